"""Python's garbage collector around a ``collabflow run`` night.

Start-up imports torch, Prefect, pydantic and the rest: about 500k objects, during which the collector
ran 8 full collections over the growing heap (2.3 s of a 2-core machine's start-up). ``quiet_start``
turns it off for the imports and Prefect's server start; ``settle``, the flow's first line, freezes what
start-up made (later full collections skip it) and turns the collector back on for the night itself.
"""

from __future__ import annotations

import gc


def quiet_start() -> None:
    """Off until the flow starts (``settle``). Only for a command that runs the nightly flow next."""
    gc.disable()


def settle() -> None:
    """If start-up turned the collector off: freeze everything made so far, then turn it back on."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
