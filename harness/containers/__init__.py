"""Codec containers: build the recipes of ``codecs/`` and run binaries in them.

One idea per module:

- ``engine``: the Docker engine through the docker SDK, or one clear error saying why not;
- ``recipe``: the recipes (``codecs/<name>/Dockerfile``), their content-hash image tags,
  finding a built image;
- ``builder``: building a recipe's image, and one line saying why a build failed;
- ``workers``: one long-lived container per image and process that runs the binaries;
- ``cli``: ``harness containers build|list|clean`` (also ``python -m harness.containers``).
"""

from harness.containers.builder import BuildResult, build, build_failure, build_recipe
from harness.containers.cli import add_containers_parser, cmd_build, cmd_clean, cmd_list
from harness.containers.engine import (
    ContainerError,
    EngineUnavailable,
    docker_client,
    engine_available,
)
from harness.containers.recipe import (
    RECIPES_ENV,
    Recipe,
    find_image,
    get_recipe,
    recipes,
    recipes_dir,
)
from harness.containers.workers import (
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_WORKER,
    CommandResult,
    Worker,
    close_workers,
    get_worker,
    remove_stale_workers,
)

__all__ = ["LABEL_OWNER_HOST", "LABEL_OWNER_PID", "LABEL_WORKER", "RECIPES_ENV", "BuildResult",
           "CommandResult", "ContainerError", "EngineUnavailable", "Recipe", "Worker",
           "add_containers_parser", "build", "build_failure", "build_recipe", "close_workers",
           "cmd_build", "cmd_clean", "cmd_list", "docker_client", "engine_available",
           "find_image", "get_recipe", "get_worker", "recipes", "recipes_dir",
           "remove_stale_workers"]
