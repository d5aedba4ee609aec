"""One run per warehouse at a time: an advisory lock the OS drops when the process dies, even on kill -9."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recmodel.io.errors import UserError

from .paths import private_dir


class WarehouseBusy(RuntimeError, UserError):
    """Another run holds the warehouse."""


@contextmanager
def exclusive(warehouse: str | Path) -> Iterator[None]:
    private_dir(warehouse)
    lock_path = Path(warehouse) / ".collabflow.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise WarehouseBusy(
                f"another collabflow run (pid {holder}) is using {warehouse}; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
