"""`python -m harness.sweep` == `harness-run`."""
from .app import main

main()
