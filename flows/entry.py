"""The ``collabflow`` console script: read commands go straight to ``flows.read`` (light), everything
else to the typer app in ``flows.cli``."""

from __future__ import annotations

import sys

from flows import read


def main() -> None:
    if sys.argv[1:2] and sys.argv[1] in read.COMMANDS:
        read.main(sys.argv[1:])
        return
    from flows.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
