"""Small helpers about operating-system processes."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_deferring = False  # a deferred_interrupts block is active
_pending = False  # Ctrl-C came during it and is held


def _hold(signum, frame) -> None:
    global _pending
    _pending = True


@contextmanager
def deferred_interrupts():
    """Hold Ctrl-C (SIGINT) inside the block until the next :func:`interrupt_point`.

    A KeyboardInterrupt raised half-way through importing a C extension or inside native
    drawing code can break the interpreter (an import that "failed to initialise", a
    fatal error at exit, a misleading TypeError). Held, it is raised where Python code
    unwinds cleanly: at an interrupt point, or at the end of the block. Only the main
    thread can handle signals; elsewhere, in a nested block, or where SIGINT has another
    handler than Python's (ignored, say), this does nothing.
    """
    global _deferring, _pending
    if (_deferring or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield  # nested, not the main thread, or Ctrl-C is ignored or handled elsewhere
        return
    previous = signal.signal(signal.SIGINT, _hold)
    _deferring, _pending = True, False
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _deferring = False
    interrupt_point()


def interrupt_point() -> None:
    """Raise the Ctrl-C that a :func:`deferred_interrupts` block held, if any."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt
