import sys

from drmoe_repro.cli import main

sys.exit(main())
