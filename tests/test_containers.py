"""Container recipes and the docker SDK layer.

Tests that need a Docker engine skip when none is reachable, except under CI=true,
where the engine is part of the setup (codecs/ci-setup.sh) and they must run.
"""

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from harness import containers
from harness.errors import HarnessError, UsageError
from tests.conftest import REPO


def require_docker() -> None:
    """Skip without a reachable Docker engine; fail instead when CI=true."""
    ok, why = containers.engine_available()
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but Docker is not usable: {why}")
        pytest.skip(f"no Docker engine: {why}")


@pytest.fixture(scope="session")
def debian_image() -> str:
    """The codecs/debian image, built once per session if it is not there yet."""
    require_docker()
    try:
        result = containers.build_recipe("debian", log=lambda text: None)
    except containers.ContainerError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot build codecs/debian: {exc}")
        pytest.skip(f"cannot build codecs/debian here: {exc}")
    return result.tag


# --- recipes (no engine needed) -------------------------------------------------------

@pytest.fixture
def recipe_copy(tmp_path, monkeypatch):
    """A copy of the recipes folder, used as $HARNESS_RECIPES."""
    root = tmp_path / "codecs"
    shutil.copytree(REPO / "codecs", root)
    monkeypatch.setenv(containers.RECIPES_ENV, str(root))
    return root


def test_repository_recipes_are_found():
    names = set(containers.recipes())
    assert {"debian", "bpg", "vtm"} <= names
    for recipe in containers.recipes().values():
        assert recipe.base_images() == ["debian:bookworm-slim"]
        assert recipe.tag().startswith(f"lic-harness/{recipe.name}:")


def test_tag_follows_the_recipe_content(recipe_copy):
    recipe = containers.get_recipe("debian")
    before = recipe.tag()
    assert recipe.tag() == before  # stable
    dockerfile = recipe_copy / "debian" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\n# changed\n")
    assert recipe.tag() != before
    assert recipe.tag({"DEBIAN_MIRROR": "http://mirror.invalid/debian"}) != recipe.tag()
    (recipe_copy / "debian" / "extra.cfg").write_text("x")
    assert len({recipe.tag(), before}) == 2


def test_base_images_follow_build_args(tmp_path):
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "Dockerfile").write_text(textwrap.dedent("""\
        # a comment
        ARG BASE_IMAGE=debian:bookworm-slim
        FROM ${BASE_IMAGE} AS build
        RUN true
        FROM build AS second
        FROM $BASE_IMAGE
        FROM scratch
        """))
    recipe = containers.Recipe("demo", folder)
    assert recipe.base_images() == ["debian:bookworm-slim"]
    assert recipe.base_images({"BASE_IMAGE": "local/base:1"}) == ["local/base:1"]


def test_unknown_recipe_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown codec recipe 'nope'.*debian"):
        containers.get_recipe("nope")


def test_no_recipes_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(containers.RECIPES_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(containers.recipe, "__file__",
                        str(tmp_path / "x" / "containers" / "recipe.py"))
    with pytest.raises(containers.ContainerError, match="no codec recipes found"):
        containers.recipes_dir()


def test_command_line_parser():
    parser = argparse.ArgumentParser()
    containers.add_containers_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["containers", "build", "debian", "bpg", "--build-arg", "A=1"])
    assert args.handler is containers.cmd_build
    assert args.names == ["debian", "bpg"] and args.build_arg == ["A=1"]
    assert parser.parse_args(["containers", "list"]).handler is containers.cmd_list
    assert parser.parse_args(["containers", "clean"]).handler is containers.cmd_clean
    with pytest.raises(SystemExit):
        parser.parse_args(["containers"])


def test_source_needs_exactly_one_recipe():
    args = argparse.Namespace(names=["bpg", "vtm"], source="x.tar.gz", build_arg=None,
                              no_cache=False, verbose=False)
    with pytest.raises(UsageError, match="exactly one"):
        containers.cmd_build(args)
    with pytest.raises(UsageError, match="KEY=VALUE"):
        containers.cli._parse_build_args(["novalue"])


def test_engine_unreachable_is_one_clear_message(monkeypatch):
    docker = pytest.importorskip("docker")

    def refuse(**kwargs):
        raise docker.errors.DockerException("Error while fetching server API version")

    monkeypatch.setattr(docker, "from_env", refuse)
    with pytest.raises(containers.EngineUnavailable) as info:
        containers.docker_client()
    assert isinstance(info.value, HarnessError)
    assert "not reachable" in str(info.value) and "docker.io" in str(info.value)
    assert containers.engine_available() == (False, str(info.value))


def test_missing_sdk_is_one_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)
    with pytest.raises(containers.EngineUnavailable, match="pip install"):
        containers.docker_client()


def test_missing_base_image_names_the_seed_script(monkeypatch):
    docker = pytest.importorskip("docker")

    class Images:
        def get(self, name):
            raise docker.errors.ImageNotFound(name)

        def pull(self, name):
            raise docker.errors.APIError("Get https://registry-1.docker.io/v2/: no such host")

    class Client:
        images = Images()

    with pytest.raises(containers.ContainerError) as info:
        containers.build_recipe("debian", client=Client(), say=lambda line: None)
    message = str(info.value)
    assert "debian:bookworm-slim" in message and "cannot be pulled" in message
    assert "seed-base-image.sh" in message


# --- with a Docker engine ----------------------------------------------------------------

def test_second_build_is_a_no_op(debian_image):
    said = []
    result = containers.build_recipe("debian", say=said.append, log=lambda text: None)
    assert not result.built and result.tag == debian_image
    assert "up to date" in said[0]
    # and through the command line, as a user runs it
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness.containers", "build", "debian"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stderr and debian_image in done.stderr
    assert time.perf_counter() - started < 30
    listed = subprocess.run([sys.executable, "-m", "harness.containers", "list"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("debian") and debian_image in line and " built " in line
               for line in listed.stdout.splitlines())


def test_worker_container_is_locked_down_and_removed(debian_image):
    worker = containers.Worker(debian_image)
    try:
        result = worker.run(["sh", "-c", "id -u; cat /proc/1/status | grep -i ^capeff; "
                                         "touch /x 2>&1 || echo ro-root; ls /sys/class/net"],
                            timeout=60)
        lines = result.stdout.decode().split()
        assert result.returncode == 0
        assert lines[0] == ("65534" if os.getuid() == 0 else str(os.getuid()))
        assert "ro-root" in result.stdout.decode()
        assert "eth0" not in lines  # --network none: loopback only
        container = containers.docker_client().containers.get(worker.container_id)
        host_config = container.attrs["HostConfig"]
        assert host_config["NetworkMode"] == "none" and host_config["ReadonlyRootfs"]
        assert host_config["Memory"] > 0 and host_config["PidsLimit"] > 0
        assert not host_config["Privileged"] and host_config["CapDrop"] == ["ALL"]
        assert container.labels[containers.LABEL_WORKER] == "1"
        timed = worker.run(["sleep", "30"], timeout=1)
        assert timed.timed_out and timed.seconds < 15
        failed = worker.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
        assert (failed.returncode, failed.stdout, failed.stderr) == (3, b"out\n", b"err\n")
        quoted = worker.run(["printf", "%s|", "a b", "it's", "$HOME"], timeout=10)
        assert quoted.stdout == b"a b|it's|$HOME|"
        by_exec = worker.exec(["sh", "-c", "id -u; exit 4"], timeout=10)
        assert by_exec.returncode == 4 and by_exec.stdout.decode().split() == lines[:1]
        assert sorted(p.name for p in worker.host_dir.iterdir()) == []
        cid = worker.container_id
    finally:
        worker.close()
    docker = pytest.importorskip("docker")
    with pytest.raises(docker.errors.NotFound):
        for _ in range(50):
            containers.docker_client().containers.get(cid)
            time.sleep(0.2)


def test_worker_of_a_killed_process_goes_away(debian_image):
    """SIGKILL skips atexit; the container must still disappear."""
    script = textwrap.dedent(f"""
        import os, signal
        from harness import containers
        worker = containers.get_worker({debian_image!r})
        worker.run(["true"], timeout=30)
        print(worker.container_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    cid = done.stdout.strip()
    assert done.returncode == -9 and cid, done.stderr
    client = containers.docker_client()
    deadline = time.time() + 20
    while time.time() < deadline:
        if not client.containers.list(all=True, filters={"id": cid}, ignore_removed=True):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"container {cid[:12]} outlived its killed owner")


def test_worker_restarts_a_container_removed_under_it(debian_image):
    worker = containers.Worker(debian_image)
    try:
        assert worker.run(["true"], timeout=30).returncode == 0
        first = worker.container_id
        containers.docker_client().containers.get(first).remove(force=True)
        result = worker.run(["sh", "-c", "echo again"], timeout=30)
        assert result.returncode == 0 and result.stdout == b"again\n"
        assert worker.container_id != first
    finally:
        worker.close()


def test_clean_removes_workers_of_dead_processes_only(debian_image):
    import socket

    client = containers.docker_client()
    labels = {containers.LABEL_WORKER: "1", containers.LABEL_OWNER_HOST: socket.gethostname()}
    dead = client.containers.create(debian_image, "true", labels={
        **labels, containers.LABEL_OWNER_PID: "999999999"})
    alive = client.containers.create(debian_image, "sleep 60", labels={
        **labels, containers.LABEL_OWNER_PID: str(os.getpid())})
    try:
        alive.start()
        removed = containers.remove_stale_workers(client)
        assert dead.name in removed and alive.name not in removed
        assert client.containers.list(all=True, filters={"id": alive.id},
                                      ignore_removed=True)
    finally:
        for container in (dead, alive):
            with contextlib.suppress(Exception):
                container.remove(force=True)


def test_an_image_can_be_chosen_by_environment(debian_image, monkeypatch):
    assert containers.find_image("debian") == debian_image
    monkeypatch.setenv("HARNESS_IMAGE_DEBIAN", "debian:bookworm-slim")
    assert containers.find_image("debian") == "debian:bookworm-slim"
    monkeypatch.setenv("HARNESS_IMAGE_DEBIAN", "lic-harness/debian:nonexistent")
    with pytest.raises(containers.ContainerError, match="no such image"):
        containers.find_image("debian")
