"""`python -m workers.cli`: the `govsms` command, as the tests and `govsms run` start it."""

from __future__ import annotations

from workers.cli import main

if __name__ == "__main__":
    main()
