"""Workers: one long-lived container per image and process that runs codec binaries.

A codec does not ``docker run`` per image (a container start costs 0.2-0.4 s):
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
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shlex
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.containers.engine import ContainerError, docker_client
from harness.processes import pid_alive

LABEL_WORKER = "org.lic-harness.worker"
LABEL_OWNER_PID = "org.lic-harness.owner-pid"
LABEL_OWNER_HOST = "org.lic-harness.owner-host"
CONTAINER_WORKDIR = "/work"


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
