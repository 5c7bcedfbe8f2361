import sys

from fmbench.cli import main

sys.exit(main())
