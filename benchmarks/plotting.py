"""matplotlib for the benchmark plots, without a display, or one clear line when it is missing."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def pyplot() -> Any | None:
    """``matplotlib.pyplot`` on the Agg backend, or None (after saying so) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("error: the plot needs matplotlib (pip install 'streamsr[plot]')", file=sys.stderr)
        return None
    return plt


def save(fig: Any, out: Path) -> None:
    """Lay out and write ``fig`` as a PNG at ``out`` (its folder made if needed)."""
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
