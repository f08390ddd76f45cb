from __future__ import annotations

import sys

from streamsr.cli import main

sys.exit(main())
