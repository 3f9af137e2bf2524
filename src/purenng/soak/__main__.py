"""``python -m purenng.soak``: see :mod:`purenng.soak.command`."""

import sys

from .command import main

sys.exit(main())
