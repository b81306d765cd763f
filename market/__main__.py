"""``python -m market``: the same as the ``market`` command."""

import sys

from market.apps.cli import main

sys.exit(main())
