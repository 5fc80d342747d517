import sys

from kinefuse.cli import main

sys.exit(main())
