"""``python -m hanet`` is the ``hanet`` command (handy under torchrun: ``torchrun -m hanet train ...``)."""

import sys

from hanet.cli import main

sys.exit(main())
