"""`python -m core.cli` is the `spread` command."""

import sys

from core.cli import main

sys.exit(main())
