"""The Docker engine through the docker SDK: a client, or one clear error saying why not."""

from __future__ import annotations

import os

from harness.errors import HarnessError


class ContainerError(HarnessError):
    """A container operation cannot be done (no engine, no base image, a failed build)."""


class EngineUnavailable(ContainerError):
    """The docker SDK is missing or the Docker engine cannot be reached."""


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
