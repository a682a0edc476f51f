"""``python -m mist_core.cli``: the command line without the terminal UI (Textual need not be installed)."""

import sys

from . import main

sys.exit(main())
