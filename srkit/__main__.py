"""``python -m srkit``: the same command line as ``srkit`` (see ``srkit.cli``)."""

import sys

from srkit.cli import main

sys.exit(main())
