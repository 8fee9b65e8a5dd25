"""lic-harness: benchmark and compare image codecs on real bitstreams.

The Python API (see :mod:`harness.api` and the README's "Python API"):
``harness.load_results``, ``harness.benchmark``, ``harness.curves``,
``harness.bd_table``, ``harness.report``, ``harness.check``, ``harness.verify`` and
``harness.profile``. Nothing heavy is
imported until one of them is called.
"""

import sys
import types

__version__ = "0.1.0"

API = ("load_results", "benchmark", "curves", "bd_table", "report", "check", "verify",
       "profile")
_MODULES = ("curves", "report", "check", "verify", "profile")  # API names that are modules too


class _CallableModule(types.ModuleType):
    """``harness.curves``, ``harness.report``, ``harness.check``, ``harness.verify`` and
    ``harness.profile`` are modules too: called, they run the API function of that name."""

    def __call__(self, *args, **kwargs):
        from harness import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        # Python sets a submodule as an attribute of its package when it is imported:
        # the submodules named like API functions become callable at that moment.
        if name in _MODULES and isinstance(value, types.ModuleType):
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


def __getattr__(name: str):
    if name not in API:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    if name in _MODULES:
        import importlib

        return importlib.import_module(f"harness.{name}")  # made callable on import
    from harness import api

    return getattr(api, name)


def __dir__():
    return sorted([*globals(), *API])


sys.modules[__name__].__class__ = _Package
