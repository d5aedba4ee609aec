"""Finding input files and reading their bytes (gzip transparently)."""

from __future__ import annotations

import gzip
from pathlib import Path

from .errors import RatingsFileError

PARQUET_SUFFIXES = (".parquet", ".pq")
RATING_FILE_SUFFIXES = (".data", ".dat", ".csv", ".tsv", ".tab", ".txt", *PARQUET_SUFFIXES)


def list_rating_files(source: str | Path) -> list[Path]:
    """A file, or every rating file directly inside a folder (sorted by name; hidden files skipped)."""
    path = Path(source)
    if not path.exists():
        raise RatingsFileError(path, "no such file or folder", "Check the --source path.")
    if path.is_file():
        return [path]
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and logical_name(p).endswith(RATING_FILE_SUFFIXES)
    )
    if not files:
        raise RatingsFileError(
            path,
            "folder holds no rating files",
            f"Put files ending in {', '.join(RATING_FILE_SUFFIXES)} (optionally .gz) in it.",
        )
    return files


def logical_name(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise RatingsFileError(
            path, "is a folder, not a file", "Pass the folder itself as --source to ingest every file in it."
        ) from None
    except FileNotFoundError:
        raise RatingsFileError(path, "disappeared before it could be read", "Re-deliver the file and rerun.") from None
    except OSError as e:
        raise RatingsFileError(path, f"cannot be read ({e.strerror})", "Check the file's permissions.") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise RatingsFileError(path, f"is a damaged gzip file ({e})", "Re-deliver the file.") from None
    if not data.strip():
        raise RatingsFileError(path, "is empty", "Deliver a file with at least one rating row.")
    return data
