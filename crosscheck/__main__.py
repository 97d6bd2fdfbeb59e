"""``python -m crosscheck`` is ``alexnet crosscheck``."""

import sys

from alexnet_cli.main import main

sys.exit(main(["crosscheck", *sys.argv[1:]]))
