"""The ``collabflow`` console script: read commands go straight to ``flows.read`` (light), everything
else to the typer app in ``flows.cli``.

At exit, the interpreter's final garbage collections walk every object torch, Prefect and pydantic
made, ~2 s on 2 cores after a night, to free memory the process is about to hand back anyway.
``gc.freeze()`` as the last exit handler leaves them nothing to walk; objects are still released by
reference count, and files and databases are closed by the code that opened them."""

from __future__ import annotations

import atexit
import gc
import sys

from flows import read


def main() -> None:
    if sys.argv[1:2] and sys.argv[1] in read.COMMANDS:
        read.main(sys.argv[1:])
        return
    # registered before Prefect is imported, so it runs after Prefect's own exit handlers (the last
    # flushes, stopping the temporary server) and before logging's
    atexit.register(gc.freeze)
    from flows.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
