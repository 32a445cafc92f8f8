"""`python -m rempart` runs the CLI."""

from rempart.cli import main

main()
