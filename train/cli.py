"""What every `python -m train...` command does with an error: one line and its exit code."""
from __future__ import annotations

import sys
from collections.abc import Callable

from streamsr.errors import StreamSRError


def report_errors(body: Callable[[], int], debug: bool = False) -> int:
    """Run ``body``; a StreamSRError becomes one line on stderr and its exit code (``debug``: the traceback)."""
    try:
        return body()
    except StreamSRError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
