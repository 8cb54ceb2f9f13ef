"""`python -m ganfriends_bootstrap` and the zipapp's entry point."""

import sys

from ganfriends_bootstrap.cli import main

sys.exit(main())
