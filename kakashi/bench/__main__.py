"""``python -m kakashi.bench``: run the side-by-side benchmark and print the table."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
