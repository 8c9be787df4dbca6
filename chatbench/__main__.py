"""``python -m chatbench``: the same as the ``chatbench`` console script."""

import sys

from chatbench.cli import main

sys.exit(main())
