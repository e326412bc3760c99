"""`python -m harness.bench` runs the `harness-bench` command line."""
import sys

from .cli import main

sys.exit(main())
