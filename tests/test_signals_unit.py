"""Termination signals raise Terminated in the main thread while a run is on, and only then;
a signal the caller chose to ignore (nohup, a shell's background job) stays ignored."""
from __future__ import annotations

import os
import signal
import time

import pytest

from streamsr.signals import Terminated, termination_as_interrupt


def test_sigterm_raises_terminated_with_the_shell_exit_code():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as caught:
        with termination_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at once
    assert isinstance(caught.value, KeyboardInterrupt)
    assert caught.value.signame == "SIGTERM" and caught.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_ignored_signal_stays_ignored():
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with termination_as_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)  # nothing happens
    finally:
        signal.signal(signal.SIGHUP, before)
