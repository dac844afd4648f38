"""`python -m lossbench.cli`: the `lossbench` command."""

from lossbench.cli import run_main

run_main()
