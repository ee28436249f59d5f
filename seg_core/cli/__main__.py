"""`python -m seg_core.cli ...`: the same as the `maskloop` command."""

import sys

from seg_core.cli import main

sys.exit(main())
