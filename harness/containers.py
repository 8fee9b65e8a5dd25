"""Codec containers: build the recipes of ``codecs/`` and run binaries in them.

Recipes. Each folder ``codecs/<name>/`` with a ``Dockerfile`` is a recipe. Its image is
tagged ``lic-harness/<name>:<hash12>``, where the hash covers every file of the folder
and the build arguments, so a changed recipe builds a new image and an unchanged one is
never rebuilt. Builds use the Docker engine's classic builder through the docker SDK
(``pip install docker``), never pull during the build, and stream the build log.
The base image ``debian:bookworm-slim`` is made offline by ``codecs/seed-base-image.sh``.

Workers. A codec does not ``docker run`` per image (a container start costs 0.2-0.4 s):
each process keeps one long-lived container per image (:class:`Worker`), started on
first use. Its main process is a small job loop: the owner writes a command to a file
in the exchange folder and sends its name over the container's attached stdin; the loop
runs it under ``timeout`` and answers with the exit status on stdout. That costs a few
milliseconds per call, where ``docker exec`` costs 30-60 ms (:meth:`Worker.exec` is
kept for comparison). The container runs without network, with a read-only root file
system, as a non-root user, without capabilities or privilege escalation, with memory
and process limits; it sees one per-process exchange folder at ``/work``. It is removed
at process exit, and also when the process dies without cleaning up (SIGKILL): the
loop ends when its stdin closes, which only the owning process holds open, and the
engine then removes the container. Worker containers carry the label
``org.lic-harness.worker``; ``harness containers clean`` removes any that are left.

Command line (wired by :func:`add_containers_parser`, or ``python -m harness.containers``)::

    harness containers build [NAME ...] [--source PATH] [--build-arg K=V] [--no-cache]
    harness containers list
    harness containers clean
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError, UsageError
from harness.processes import pid_alive

IMAGE_REPOSITORY = "lic-harness"
LABEL_RECIPE = "org.lic-harness.recipe"
LABEL_RECIPE_HASH = "org.lic-harness.recipe-hash"
LABEL_SOURCE = "org.lic-harness.source"
LABEL_BUILD_ARGS = "org.lic-harness.build-args"
LABEL_WORKER = "org.lic-harness.worker"
LABEL_OWNER_PID = "org.lic-harness.owner-pid"
LABEL_OWNER_HOST = "org.lic-harness.owner-host"
RECIPES_ENV = "HARNESS_RECIPES"
IMAGE_ENV_PREFIX = "HARNESS_IMAGE_"  # HARNESS_IMAGE_VTM=lic-harness/vtm:<hash> picks an image
SEED_SCRIPT = "codecs/seed-base-image.sh"
CONTAINER_WORKDIR = "/work"
LOCAL_SOURCE_DIR = "local-source"


class ContainerError(HarnessError):
    """A container operation cannot be done (no engine, no base image, a failed build)."""


class EngineUnavailable(ContainerError):
    """The docker SDK is missing or the Docker engine cannot be reached."""


# --- the engine -------------------------------------------------------------------------

def _import_docker():
    try:
        import docker
    except ImportError:
        raise EngineUnavailable(
            "the Python docker SDK is not installed: pip install 'docker>=7.1'") from None
    return docker


def docker_client(timeout: float | None = 60):
    """A docker SDK client, or :class:`EngineUnavailable` saying why and what to do."""
    docker = _import_docker()
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise EngineUnavailable(
            f"the Docker engine is not reachable at {where} ({type(exc).__name__}: "
            f"{_short(exc)}). Install and start it (Debian: apt-get install docker.io, then "
            "`dockerd &` or `systemctl start docker`; codecs/ci-setup.sh does both), or "
            "set DOCKER_HOST.") from None
    return client


def engine_available() -> tuple[bool, str]:
    """Whether a Docker engine answers here, and if not, why."""
    try:
        docker_client(timeout=10).close()
    except EngineUnavailable as exc:
        return False, str(exc)
    return True, ""


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


# --- recipes ----------------------------------------------------------------------------

def recipes_dir() -> Path:
    """The ``codecs/`` folder of recipes: $HARNESS_RECIPES, the source checkout, or ./codecs."""
    env = os.environ.get(RECIPES_ENV)
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[1] / "codecs", Path.cwd() / "codecs"]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*/Dockerfile")):
            return candidate
    raise ContainerError(
        "no codec recipes found (a codecs/ folder with <name>/Dockerfile): run from a "
        f"checkout of lic-harness or set {RECIPES_ENV}")


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path

    def files(self) -> list[Path]:
        return sorted(p for p in self.path.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts)

    def content_hash(self, build_args: dict[str, str] | None = None) -> str:
        """sha256 of every file (path, executable bit, bytes) and the build arguments."""
        digest = hashlib.sha256()
        for file in self.files():
            rel = file.relative_to(self.path).as_posix()
            executable = "x" if os.access(file, os.X_OK) else "-"
            digest.update(f"{rel}\0{executable}\0{file.stat().st_size}\0".encode())
            digest.update(file.read_bytes())
        for key, value in sorted((build_args or {}).items()):
            digest.update(f"arg\0{key}={value}\0".encode())
        return digest.hexdigest()

    def tag(self, build_args: dict[str, str] | None = None) -> str:
        return f"{IMAGE_REPOSITORY}/{self.name}:{self.content_hash(build_args)[:12]}"

    def base_images(self, build_args: dict[str, str] | None = None) -> list[str]:
        """The images the Dockerfile's FROM lines name (stage names left out)."""
        text = (self.path / "Dockerfile").read_text()
        args: dict[str, str] = {}
        bases: list[str] = []
        stages: set[str] = set()
        for line in _logical_lines(text):
            words = line.split()
            if not words:
                continue
            keyword = words[0].upper()
            if keyword == "ARG" and len(words) > 1 and not bases:
                key, _, value = words[1].partition("=")
                args[key] = value.strip("\"'")
            elif keyword == "FROM" and len(words) > 1:
                image = _substitute(words[1], {**args, **(build_args or {})})
                if len(words) >= 4 and words[2].upper() == "AS":
                    stages.add(words[3])
                if image not in stages and image != "scratch" and image not in bases:
                    bases.append(image)
        return bases


def _substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), ""), text)


def _logical_lines(text: str) -> Iterable[str]:
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        yield current + line
        current = ""
    if current:
        yield current


def recipes() -> dict[str, Recipe]:
    root = recipes_dir()
    return {p.parent.name: Recipe(p.parent.name, p.parent)
            for p in sorted(root.glob("*/Dockerfile"))}


def get_recipe(name: str) -> Recipe:
    known = recipes()
    if name not in known:
        raise UsageError(f"unknown codec recipe {name!r}; known: {', '.join(known)}")
    return known[name]


def find_image(name: str, client=None) -> str | None:
    """The tag of the built image of recipe ``name`` as it is now, or None if not built.

    ``$HARNESS_IMAGE_<NAME>`` names another image (e.g. one built with build arguments).
    Without a recipes folder (an installed package, no checkout), the newest image
    labelled with that recipe is used.
    """
    own = client is None
    client = client or docker_client()
    docker = _import_docker()
    chosen = os.environ.get(IMAGE_ENV_PREFIX + name.upper().replace("-", "_"))
    try:
        if chosen:
            try:
                client.images.get(chosen)
            except docker.errors.ImageNotFound:
                raise ContainerError(f"{IMAGE_ENV_PREFIX}{name.upper()}={chosen}: no such "
                                     "image here (`harness containers list`)") from None
            return chosen
        try:
            tag = get_recipe(name).tag()
        except ContainerError:
            images = client.images.list(filters={"label": f"{LABEL_RECIPE}={name}"})
            images = [i for i in images if i.tags]
            if not images:
                return None
            newest = max(images, key=lambda i: i.attrs.get("Created", ""))
            return newest.tags[0]
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            return None
        return tag
    finally:
        if own:
            client.close()


# --- building ---------------------------------------------------------------------------

@dataclass
class BuildResult:
    name: str
    tag: str
    built: bool  # False: the image existed already (recipe unchanged)
    seconds: float = 0.0
    size_bytes: int = 0


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def _build_context(recipe: Recipe, source: Path | None) -> tuple[tempfile.SpooledTemporaryFile,
                                                                  str]:
    """A tar of the recipe folder (+ the local source under local-source/)."""
    context = tempfile.SpooledTemporaryFile(max_size=32 << 20)
    local = ""
    with tarfile.open(fileobj=context, mode="w") as tar:
        for file in recipe.files():
            tar.add(file, arcname=file.relative_to(recipe.path).as_posix(), recursive=False,
                    filter=_normalised)
        if source is not None:
            if source.is_dir():
                local = LOCAL_SOURCE_DIR
            else:
                local = f"{LOCAL_SOURCE_DIR}/{source.name}"
            tar.add(source, arcname=local, filter=_normalised)
    context.seek(0)
    return context, local


def _ensure_base_images(client, recipe: Recipe, build_args: dict[str, str],
                        say: Callable[[str], None]) -> None:
    docker = _import_docker()
    for base in recipe.base_images(build_args):
        try:
            client.images.get(base)
            continue
        except docker.errors.ImageNotFound:
            pass
        say(f"base image {base} is not here; trying to pull it")
        try:
            client.images.pull(base)
        except Exception as exc:
            raise ContainerError(
                f"the base image {base} of recipe {recipe.name} is not on this machine and "
                f"cannot be pulled ({_short(exc, 160)}). Make it offline with: "
                f"sudo {recipes_dir() / 'seed-base-image.sh'} {base}") from None


def build_recipe(name: str, *, source: str | os.PathLike | None = None,
                 build_args: dict[str, str] | None = None, no_cache: bool = False,
                 client=None, say: Callable[[str], None] | None = None,
                 log: Callable[[str], None] | None = None) -> BuildResult:
    """Build recipe ``name`` unless its image (same content hash) exists already.

    ``say`` gets status lines, ``log`` the build log as it streams.
    """
    say = say or (lambda line: print(line, file=sys.stderr))
    log = log or (lambda line: print(line, end="", flush=True))
    client = client or docker_client(timeout=3600)
    docker = _import_docker()
    recipe = get_recipe(name)
    build_args = dict(build_args or {})
    tag = recipe.tag(build_args)
    if not no_cache:
        try:
            image = client.images.get(tag)
            say(f"{tag} is up to date (recipe unchanged); nothing to build"
                + (" (--no-cache rebuilds it from --source)" if source else ""))
            return BuildResult(name, tag, False, 0.0, image.attrs.get("Size", 0))
        except docker.errors.ImageNotFound:
            pass
    _ensure_base_images(client, recipe, build_args, say)
    source_path = Path(source).resolve() if source else None
    if source_path is not None and not source_path.exists():
        raise UsageError(f"--source {source}: no such file or folder")
    context, local = _build_context(recipe, source_path)
    if local:
        build_args["LOCAL_SOURCE"] = local
    labels = {
        LABEL_RECIPE: name,
        LABEL_RECIPE_HASH: recipe.content_hash({k: v for k, v in build_args.items()
                                                if k != "LOCAL_SOURCE"}),
        LABEL_SOURCE: f"local: {source_path}" if source_path else "upstream",
        LABEL_BUILD_ARGS: json.dumps(build_args, sort_keys=True),
    }
    say(f"building {tag} from {recipe.path}"
        + (f" with local source {source_path}" if source_path else ""))
    started = time.perf_counter()
    error = None
    image_id = None
    recent: list[str] = []  # the log's last lines, to tell why a step failed
    try:
        with context:
            stream = client.api.build(fileobj=context, custom_context=True, tag=tag, rm=True,
                                      forcerm=True, pull=False, nocache=no_cache,
                                      buildargs=build_args, labels=labels, decode=True)
            for chunk in stream:
                if "stream" in chunk:
                    log(chunk["stream"])
                    recent = (recent + chunk["stream"].splitlines())[-40:]
                    found = re.match(r"Successfully built ([0-9a-f]+)", chunk["stream"])
                    if found:
                        image_id = found.group(1)
                elif "error" in chunk:
                    error = chunk["error"]
                elif "status" in chunk:
                    log(chunk["status"] + "\n")
    except docker.errors.APIError as exc:
        error = _short(exc, 2000)
    if error or image_id is None:
        raise ContainerError(build_failure(name, error or "", recent))
    seconds = time.perf_counter() - started
    size = client.images.get(tag).attrs.get("Size", 0)
    say(f"built {tag} in {seconds:.1f} s ({size / 1e6:.0f} MB)")
    if set(build_args) - {"LOCAL_SOURCE"}:
        say(f"the codecs use the image of the recipe without build arguments; to use this "
            f"one: {IMAGE_ENV_PREFIX}{name.upper()}={tag}")
    return BuildResult(name, tag, True, seconds, size)


# what a failed download prints (curl, wget, apt-get, git) when the network is missing
_OFFLINE = re.compile(r"Could not resolve|Temporary failure (in name )?resolv|unable to resolve"
                      r"|Network is unreachable|Failed to connect|Connection refused|timed out",
                      re.IGNORECASE)


def build_failure(name: str, error: str, log_lines: Sequence[str]) -> str:
    """One line saying why building recipe ``name`` failed, and what to do.

    Docker's own message for a failed step quotes the whole shell script of the step;
    that script is left out: the step's last log lines say more.
    """
    message = " ".join(error.split()) or "the build ended without an image"
    failed = re.match(r"The command '.*' returned a non-zero code: (\d+)$", message)
    if failed:
        message = f"a RUN step of {recipes_dir() / name / 'Dockerfile'} exited with {failed[1]}"
    offline = next((line.strip() for line in reversed(log_lines) if _OFFLINE.search(line)), None)
    if offline:
        return (f"building {name} failed: a download failed ({offline[:160]}); offline, give"
                f" the source yourself: harness containers build {name} --source FILE (see"
                f" {recipes_dir() / name / 'Dockerfile'} for the file it expects)")
    if "registry" in message or "no such host" in message or "pull access" in message:
        message += (f" (the base image must be on this machine: sudo "
                    f"{recipes_dir() / 'seed-base-image.sh'})")
    elif failed and log_lines:
        message += f"; its last output: {' | '.join(line.strip() for line in log_lines[-3:])}"
    return f"building {name} failed: {_short(message, 600)}"


def build(names: Sequence[str] = (), **kwargs) -> list[BuildResult]:
    """Build the named recipes (all if none), in order."""
    wanted = list(names) or list(recipes())
    for name in wanted:
        get_recipe(name)
    return [build_recipe(name, **kwargs) for name in wanted]


# --- workers: one long-lived container per image and process -------------------------

@dataclass
class CommandResult:
    """The outcome of one command, natively or in a container."""

    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float
    timed_out: bool = False

    def tail(self, lines: int = 8) -> str:
        text = (self.stderr or b"").decode(errors="replace").strip()
        if not text:
            text = (self.stdout or b"").decode(errors="replace").strip()
        return " | ".join(text.splitlines()[-lines:])


@dataclass
class WorkerLimits:
    memory: str = field(default_factory=lambda: os.environ.get("HARNESS_CONTAINER_MEMORY",
                                                               "4g"))
    pids: int = 256
    tmpfs_size: str = "256m"


def _timeout_argv(argv: Sequence[str], timeout: float) -> list[str]:
    seconds = max(1, int(round(timeout)))
    return ["timeout", "-k", "5", str(seconds), *argv]


# The container's main process: it runs the jobs the owner sends on stdin, one line
# "<job> <seconds>" each (the job's command is the file <job>.sh in /work), under
# `timeout`, and answers "<job> <exit status>" on stdout. At the end of stdin (the
# owner closed it, or died) it ends, and with it the container.
JOB_LOOP = ('while IFS=" " read -r job limit; do '
            'timeout -k 5 "$limit" sh "./$job.sh" >"$job.out" 2>"$job.err" </dev/null; '
            'echo "$job $?"; done')


class WorkerGone(ContainerError):
    """The worker container stopped answering (removed, engine restarted)."""


class Worker:
    """A long-lived container of ``image`` for this process.

    :meth:`run` hands each command to a job loop that is the container's main process,
    over the container's attached stdin/stdout: no process is created on the host and
    no ``docker exec`` per call (which costs 30-60 ms: namespaces, cgroups, API calls).
    :meth:`exec` runs a command with ``docker exec`` instead.
    """

    mode = "docker"

    def __init__(self, image: str, limits: WorkerLimits | None = None,
                 call_timeout: float = 3600):
        self.image = image
        self.limits = limits or WorkerLimits()
        self.owner_pid = os.getpid()
        self.host_dir = Path(tempfile.mkdtemp(prefix="lic-harness-xchg-"))
        self.container_dir = CONTAINER_WORKDIR
        self._client = None
        self._call_timeout = call_timeout
        self._container_id: str | None = None
        self._attach = None
        self._socket = None
        self._buffer = b""
        self._jobs = 0
        self._lock = threading.RLock()
        if os.getuid() == 0:
            self.user = "65534:65534"
            os.chown(self.host_dir, 65534, 65534)
        else:
            self.user = f"{os.getuid()}:{os.getgid()}"

    @property
    def container_id(self) -> str | None:
        return self._container_id

    def _start(self) -> None:
        client = docker_client(timeout=self._call_timeout + 60)
        with contextlib.suppress(Exception):  # best effort: never blocks a worker's start
            remove_stale_workers(client)
        api = client.api
        host_config = api.create_host_config(
            binds={str(self.host_dir): {"bind": self.container_dir, "mode": "rw"}},
            network_mode="none", read_only=True, auto_remove=True, init=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={self.limits.tmpfs_size}"},
            mem_limit=self.limits.memory, memswap_limit=self.limits.memory,
            pids_limit=self.limits.pids, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], privileged=False)
        name = f"lic-harness-{_image_slug(self.image)}-{socket.gethostname()[:20]}-" \
               f"{self.owner_pid}-{os.urandom(3).hex()}"
        created = api.create_container(
            self.image, ["sh", "-c", JOB_LOOP], stdin_open=True, detach=False,
            user=self.user, working_dir=self.container_dir, name=name,
            environment={"HOME": "/tmp"}, host_config=host_config,
            labels={LABEL_WORKER: "1", LABEL_OWNER_PID: str(self.owner_pid),
                    LABEL_OWNER_HOST: socket.gethostname(), "org.lic-harness.image": self.image})
        cid = created["Id"]
        try:
            # The container lives as long as this connection is open: it closes when the
            # process ends, however it ends, and the container then exits (auto-removed).
            attach = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
            api.start(cid)
        except Exception:
            with contextlib.suppress(Exception):
                api.remove_container(cid, force=True)
            raise
        self._client, self._container_id, self._attach = client, cid, attach
        self._socket = getattr(attach, "_sock", attach)
        self._buffer = b""

    def ensure_started(self) -> None:
        with self._lock:
            if self._container_id is None:
                self._start()

    def _drop(self) -> None:
        """Forget a container that stopped answering (it is removed if still there)."""
        cid, self._container_id = self._container_id, None
        if self._attach is not None:
            with contextlib.suppress(Exception):
                self._attach.close()
        self._attach = self._socket = None
        if cid is not None and self._client is not None:
            with contextlib.suppress(Exception):
                self._client.api.remove_container(cid, force=True)

    def _recv_exact(self, size: int, deadline: float) -> bytes:
        data = b""
        while len(data) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._socket.settimeout(remaining)
            chunk = self._socket.recv(size - len(data))
            if not chunk:
                raise WorkerGone("the worker container closed its output")
            data += chunk
        return data

    def _read_line(self, deadline: float) -> bytes:
        """One line of the job loop's stdout (frames: 8-byte header, then the payload)."""
        while b"\n" not in self._buffer:
            header = self._recv_exact(8, deadline)
            size = int.from_bytes(header[4:8], "big")
            payload = self._recv_exact(size, deadline) if size else b""
            if header[0] == 1:
                self._buffer += payload
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def run(self, argv: Sequence[str], timeout: float) -> CommandResult:
        """Run ``argv`` in the container's /work; kill it after ``timeout`` seconds."""
        limit = max(1, int(round(timeout)))
        with self._lock:
            for attempt in (1, 2):
                self.ensure_started()
                self._jobs += 1
                job = f"job-{self.owner_pid}-{self._jobs}"
                script = self.host_dir / f"{job}.sh"
                script.write_text("exec " + " ".join(shlex.quote(a) for a in argv) + "\n")
                script.chmod(0o644)  # readable by the container's user whatever the umask
                started = time.perf_counter()
                deadline = time.monotonic() + limit + 30
                try:
                    self._socket.sendall(f"{job} {limit}\n".encode())
                    line = self._read_line(deadline)
                    break
                except (OSError, WorkerGone) as exc:
                    # gone (removed by hand, engine restarted): start anew, once
                    self._drop()
                    self._cleanup(job)
                    if attempt == 2:
                        raise WorkerGone(f"the worker container of {self.image} stopped: "
                                         f"{exc}") from None
                except TimeoutError:
                    self._drop()
                    self._cleanup(job)
                    return CommandResult(list(argv), 124, b"", b"no answer from the container",
                                         time.perf_counter() - started, timed_out=True)
            seconds = time.perf_counter() - started
            name, _, status = line.decode(errors="replace").partition(" ")
            if name != job or not status.strip().lstrip("-").isdigit():
                self._drop()
                self._cleanup(job)
                raise WorkerGone(f"the worker container of {self.image} answered {line!r}")
            code = int(status)
            out = self._take(f"{job}.out")
            err = self._take(f"{job}.err")
            self._cleanup(job)
        return CommandResult(list(argv), code, out, err, seconds,
                             timed_out=code in (124, 137) and seconds >= limit * 0.98)

    def _take(self, name: str) -> bytes:
        try:
            return (self.host_dir / name).read_bytes()
        except OSError:
            return b""

    def _cleanup(self, job: str) -> None:
        for suffix in (".sh", ".out", ".err"):
            with contextlib.suppress(OSError):
                (self.host_dir / f"{job}{suffix}").unlink()

    def exec(self, argv: Sequence[str], timeout: float) -> CommandResult:
        """Run ``argv`` with ``docker exec`` (a new process in the container)."""
        self.ensure_started()
        api = self._client.api
        started = time.perf_counter()
        exec_id = api.exec_create(self._container_id, _timeout_argv(argv, timeout),
                                  workdir=self.container_dir, user=self.user,
                                  environment={"HOME": "/tmp"})["Id"]
        out, err = api.exec_start(exec_id, demux=True)
        seconds = time.perf_counter() - started
        code = api.exec_inspect(exec_id).get("ExitCode")
        code = -1 if code is None else code
        return CommandResult(list(argv), code, out or b"", err or b"", seconds,
                             timed_out=code in (124, 137) and seconds >= timeout * 0.98)

    def close(self) -> None:
        with self._lock:
            self._drop()
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None
        shutil.rmtree(self.host_dir, ignore_errors=True)


def _image_slug(image: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", image.split("/")[-1]).strip("-")[:40]


_workers: dict[tuple[str, int], Worker] = {}
_workers_lock = threading.Lock()


def get_worker(image: str, call_timeout: float = 3600) -> Worker:
    """This process's worker for ``image`` (created on first use, removed at exit)."""
    key = (image, os.getpid())
    with _workers_lock:
        worker = _workers.get(key)
        if worker is None:
            worker = _workers[key] = Worker(image, call_timeout=call_timeout)
        return worker


def close_workers() -> None:
    """Remove this process's worker containers (run at exit)."""
    pid = os.getpid()
    with _workers_lock:
        mine = [key for key in _workers if key[1] == pid]
        workers = [_workers.pop(key) for key in mine]
    for worker in workers:
        worker.close()


atexit.register(close_workers)


def remove_stale_workers(client=None, everything: bool = False) -> list[str]:
    """Remove this host's worker containers whose owner process is gone (or all)."""
    client = client or docker_client()
    removed = []
    host = socket.gethostname()
    workers = client.containers.list(all=True, filters={"label": LABEL_WORKER},
                                     ignore_removed=True)
    for container in workers:
        labels = container.labels
        try:
            pid = int(labels.get(LABEL_OWNER_PID, "0"))
        except ValueError:
            pid = 0
        if labels.get(LABEL_OWNER_HOST) != host and not everything:
            continue  # another machine's worker on a shared engine
        alive = pid > 0 and pid_alive(pid)
        if everything or not alive or container.status not in ("running", "created"):
            with contextlib.suppress(Exception):
                container.remove(force=True)
                removed.append(container.name)
    return removed


# --- command line -----------------------------------------------------------------------

def _parse_build_args(items: Sequence[str] | None) -> dict[str, str]:
    result = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--build-arg {item!r}: expected KEY=VALUE")
        result[key] = value
    return result


def cmd_build(args: argparse.Namespace) -> int:
    names = list(dict.fromkeys(args.names))
    if args.source and len(names) != 1:
        raise UsageError("--source needs exactly one recipe name (e.g. build bpg --source "
                         "libbpg-0.9.8.tar.gz)")
    build_args = _parse_build_args(args.build_arg)
    build(names, source=args.source, build_args=build_args, no_cache=args.no_cache,
          log=None if args.verbose else _quiet_log())
    return 0


def _quiet_log() -> Callable[[str], None]:
    """Print the build log's step lines and errors (the whole log with --verbose)."""
    def log(text: str) -> None:
        for line in text.splitlines():
            if line.startswith(("Step ", "WARNING", "Successfully", "E: ", "error", "make: ***",
                                "CMake Error")) or "verified" in line or "provenance" in line:
                print(line if len(line) <= 160 else line[:157] + "...", flush=True)
    return log


def _format_size(size: int) -> str:
    return f"{size / 1e6:.0f} MB" if size else "-"


def cmd_list(args: argparse.Namespace) -> int:
    known = recipes()
    client = docker_client()
    docker = _import_docker()
    images = client.images.list(filters={"label": LABEL_RECIPE})
    rows = []
    for name, recipe in known.items():
        tag = recipe.tag()
        try:
            image = client.images.get(tag)
            created = image.attrs.get("Created", "")[:19].replace("T", " ")
            rows.append((name, tag, "built", _format_size(image.attrs.get("Size", 0)), created,
                         image.labels.get(LABEL_SOURCE, "")))
        except docker.errors.ImageNotFound:
            rows.append((name, tag, "not built", "-", "-",
                         f"harness containers build {name}"))
    others = []
    for image in images:
        for tag in image.tags:
            name = image.labels.get(LABEL_RECIPE, "?")
            if name in known and tag == known[name].tag():
                continue
            others.append((name, tag, "outdated" if name in known else "unknown recipe",
                           _format_size(image.attrs.get("Size", 0)),
                           image.attrs.get("Created", "")[:19].replace("T", " "),
                           "an earlier version of the recipe"))
    header = ("recipe", "image", "state", "size", "created", "source / to build")
    table = [header, *rows, *others]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    workers = client.containers.list(all=True, filters={"label": LABEL_WORKER},
                                     ignore_removed=True)
    if workers:
        print(f"\n{len(workers)} worker container(s): "
              + ", ".join(f"{c.name} ({c.status})" for c in workers))
    print(f"\nrecipes: {recipes_dir()}")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    removed = remove_stale_workers(everything=args.all)
    print(f"removed {len(removed)} worker container(s)"
          + (": " + ", ".join(removed) if removed else ""))
    return 0


def add_containers_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``containers`` (build, list, clean) to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "containers", help="build and list the codec containers (codecs/*/Dockerfile)",
        description="Build the container images of the external codecs (BPG, VTM, and the"
                    " Debian image with x265, AVIF, JPEG XL, WebP, JPEG 2000), tagged with"
                    " their recipe's content hash: an unchanged recipe is never rebuilt.")
    _add_actions(parser)
    return parser


def _add_actions(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="containers_action", metavar="ACTION", required=True)
    build_parser = actions.add_parser("build", help="build recipes (all if none named)")
    build_parser.add_argument("names", nargs="*", metavar="NAME",
                              help="recipe names: folders of codecs/ (debian, bpg, vtm)")
    build_parser.add_argument("--source", metavar="PATH",
                              help="build from a local source tarball, tree or git repository"
                                   " instead of downloading it (one recipe)")
    build_parser.add_argument("--build-arg", action="append", metavar="KEY=VALUE",
                              help="a Dockerfile build argument (e.g. VTM_TAG=VTM-23.13)")
    build_parser.add_argument("--no-cache", action="store_true",
                              help="rebuild from scratch even if the image exists")
    build_parser.add_argument("-v", "--verbose", action="store_true",
                              help="print the whole build log (default: steps and errors)")
    build_parser.set_defaults(handler=cmd_build)
    list_parser = actions.add_parser("list", help="recipes, their images and state")
    list_parser.set_defaults(handler=cmd_list)
    clean_parser = actions.add_parser(
        "clean", help="remove worker containers whose process is gone")
    clean_parser.add_argument("--all", action="store_true",
                              help="remove every worker container, running ones too")
    clean_parser.set_defaults(handler=cmd_clean)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.containers",
        description="Build and list the codec containers (same as `harness containers`).")
    _add_actions(parser)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["BuildResult", "CommandResult", "ContainerError", "EngineUnavailable", "Recipe",
           "Worker", "add_containers_parser", "build", "build_recipe", "close_workers",
           "docker_client", "engine_available", "find_image", "get_recipe", "get_worker",
           "recipes", "recipes_dir", "remove_stale_workers"]
