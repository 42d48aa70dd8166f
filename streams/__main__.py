"""`python -m streams`: the `journey` command.

May import: streams.cli
"""

from streams.cli import main

main()
