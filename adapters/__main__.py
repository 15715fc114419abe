"""``python -m interlock.adapters`` is ``interlock``."""

import sys

from interlock.adapters.cli import main

sys.exit(main())
