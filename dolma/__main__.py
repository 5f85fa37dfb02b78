import sys

from dolma.cli import main

sys.exit(main())
