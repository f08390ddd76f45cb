from __future__ import annotations

import sys

from streamsr.commands.cli import main

sys.exit(main())
