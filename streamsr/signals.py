"""Termination signals behave like Ctrl-C: they raise ``Terminated`` (a KeyboardInterrupt) in
the main thread, so a run finishes its output with the frames done, or leaves nothing.

SIGTERM (docker stop, systemd, ``timeout``), SIGHUP (a closed terminal or SSH session),
SIGQUIT (Ctrl-\\) and SIGINT (Ctrl-C) are caught; SIGKILL cannot be, and the temporary file it
leaves is removed by a later run (``streamsr.sinks.atomic.sweep_stale``).
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

TERMINATION_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGINT") if hasattr(signal, name)
)


class Terminated(KeyboardInterrupt):
    """A termination signal arrived; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signame = signal.Signals(signum).name
        super().__init__(self.signame)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def interrupt_name(exc: BaseException) -> str:
    return getattr(exc, "signame", "SIGINT")


def interrupt_exit_code(exc: BaseException) -> int:
    return getattr(exc, "exit_code", 128 + signal.SIGINT)


def _raise_terminated(signum: int, _frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextmanager
def termination_as_interrupt(signals: tuple[signal.Signals, ...] = TERMINATION_SIGNALS) -> Iterator[None]:
    """Within the block, each of ``signals`` raises ``Terminated`` in the main thread.

    Outside the main thread (where Python cannot install handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in signals:
        if signal.getsignal(sig) is signal.SIG_IGN:
            continue  # nohup (SIGHUP), or a shell's background job (SIGINT), asked for it to be ignored
        previous[sig] = signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
