"""python3 -m localcluster <command>: see --help."""
import sys

from .cli import main

sys.exit(main())
