"""`python -m edgeopt.cli` = the `edgeopt` command."""

from edgeopt.cli import main

main()
