import sys

from eqnn.cli import main

sys.exit(main())
