"""Finding input files and reading them safely.

Whatever lands in an inbox may be wrong, huge, half-written or placed there to hurt us, so a file is:

* opened without following a symbolic link (``O_NOFOLLOW``) and without blocking (a FIFO never hangs us),
  and read only if it is a regular file;
* read as a stream, gzip decompressed as it comes, in chunks that end on a line boundary: memory is a
  small multiple of one chunk, never of the file;
* refused when a line is longer than ``max_line_bytes`` or the (decompressed) file larger than
  ``max_file_bytes``, before anything is loaded;
* hashed from exactly the bytes that are parsed (the content hash identifies the file night after night).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import RatingsFileError

PARQUET_SUFFIXES = (".parquet", ".pq")
RATING_FILE_SUFFIXES = (".data", ".dat", ".csv", ".tsv", ".tab", ".txt", *PARQUET_SUFFIXES)
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Limits:
    """How much of a file we are willing to read. Settings of the same names (``recmodel.config``)."""

    max_line_bytes: int = 1 << 20  # one line (a row); a longer one refuses the file
    max_file_bytes: int = 20 << 30  # the whole file, decompressed
    chunk_bytes: int = 64 << 20  # what is parsed at a time


def list_rating_files(source: str | Path) -> list[Path]:
    """A file, or every rating file directly inside a folder (sorted by name; hidden files skipped).

    Entries that are not regular files (links, FIFOs, devices, folders) are listed too when their names look
    like rating files: opening them then refuses them with the reason, so they are parked, not ignored.
    """
    path = Path(source)
    if not os.path.lexists(path):
        raise RatingsFileError(path, "no such file or folder", "Check the --source path")
    if path.is_dir() and not path.is_symlink():
        files = sorted(
            Path(entry.path)
            for entry in os.scandir(path)
            if not entry.name.startswith(".") and logical_name(Path(entry.name)).endswith(RATING_FILE_SUFFIXES)
        )
        if not files:
            raise RatingsFileError(
                path,
                "folder holds no rating files",
                f"Put files ending in {', '.join(RATING_FILE_SUFFIXES)} (optionally .gz) in it",
            )
        return files
    return [path]


def logical_name(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def open_regular(path: Path) -> int:
    """A read-only descriptor of ``path`` if it is a regular file; a link, FIFO, device or folder is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RatingsFileError(path, "disappeared before it could be read", "Re-deliver the file and rerun") from None
    except IsADirectoryError:
        raise RatingsFileError(
            path, "is a folder, not a file", "Pass the folder itself as --source to ingest every file in it"
        ) from None
    except OSError as e:
        if os.path.islink(path):
            raise RatingsFileError(
                path,
                "is a symbolic link; links in an inbox are not followed",
                "Copy (or move) the file itself into the inbox",
            ) from None
        raise RatingsFileError(path, f"cannot be read ({e.strerror})", "Check the file's permissions") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = (
            "a folder"
            if stat.S_ISDIR(mode)
            else "a FIFO (named pipe)"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        fix = (
            "Pass the folder itself as --source to ingest every file in it"
            if stat.S_ISDIR(mode)
            else "Deliver the data as a regular file"
        )
        raise RatingsFileError(path, f"is {kind}, not a regular file", fix)
    return fd


@dataclass
class Fingerprint:
    """What identifies a file's state on disk, before and after reading it."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, fd: int) -> Fingerprint:
        st = os.fstat(fd)
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


class Reader:
    """One pass over a file: raw blocks hashed, gzip decompressed on the fly, both sizes bounded."""

    BLOCK = 1 << 20

    def __init__(self, path: Path, limits: Limits):
        self.path, self.limits = path, limits
        self.fd = open_regular(path)
        self.before = Fingerprint.of(self.fd)
        self.hash = hashlib.sha256()
        self.decompressed = 0
        self.quoted = False  # the file quotes its fields (``line_chunks(quoted=)``)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def raw_blocks(self) -> Iterator[bytes]:
        while True:
            try:
                block = os.read(self.fd, self.BLOCK)
            except OSError as e:
                raise RatingsFileError(self.path, f"cannot be read ({e.strerror})", "Re-deliver the file") from None
            if not block:
                return
            self.hash.update(block)
            yield block

    def blocks(self) -> Iterator[bytes]:
        """Decompressed blocks; the file's size (decompressed) never exceeds ``max_file_bytes``."""
        raw = self.raw_blocks()
        first = next(raw, b"")
        if first[:2] == GZIP_MAGIC:
            yield from self._gunzip(first, raw)
            return
        for block in itertools.chain([first], raw) if first else ():
            self._count(len(block))
            yield block

    def _count(self, n: int) -> None:
        self.decompressed += n
        if self.decompressed > self.limits.max_file_bytes:
            raise RatingsFileError(
                self.path,
                f"is larger than max_file_bytes ({self.limits.max_file_bytes:,} bytes, decompressed)",
                "Split it, or raise --max-file-bytes if it is genuine",
            )

    def _gunzip(self, first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            for block in itertools.chain([first], rest):
                while block:
                    out = d.decompress(block, self.BLOCK)  # bounded output: a gzip bomb never fills memory
                    block = d.unconsumed_tail
                    self._count(len(out))
                    yield out
            tail = d.flush()
            self._count(len(tail))
            yield tail
        except zlib.error as e:
            raise RatingsFileError(self.path, f"is a damaged gzip file ({e})", "Re-deliver the file") from None
        if not d.eof:
            raise RatingsFileError(self.path, "is a damaged gzip file (it ends early)", "Re-deliver the file")

    def line_chunks(self, quoted: Callable[[bytes], bool] | None = None) -> Iterator[bytes]:
        """Chunks of about ``chunk_bytes`` that end on a line boundary (the last one may not); every line at
        most ``max_line_bytes`` long.

        ``quoted``: asked once, with the first chunk's bytes, whether the file quotes its fields (CSV's
        ``"a, b"``, where a quoted field may hold line breaks); if so a chunk ends only where the quotes before
        it are balanced, so no record is cut in two. Where they do not balance within ``max_line_bytes`` (a
        stray quote), the chunk ends at its last line break, as for an unquoted file, and the count starts
        afresh with the next chunk: one stray quote never holds back the rest of the file.
        """
        pending = b""
        buffered: list[bytes] = []
        size = 0
        for block in self.blocks():
            buffered.append(block)
            size += len(block)
            if size < self.limits.chunk_bytes:
                continue
            data = b"".join([pending, *buffered])  # one copy of the chunk's bytes
            if quoted is not None:
                self.quoted, quoted = quoted(data), None
            cut = self._record_end(data) if self.quoted else data.rfind(b"\n") + 1
            chunk, pending = data[:cut], data[cut:]
            self._check_lines(chunk, pending)
            buffered, size = [], 0
            if chunk:
                yield chunk
        data = b"".join([pending, *buffered])
        if quoted is not None:
            self.quoted = quoted(data)
        self._check_lines(data, b"")
        if data:
            yield data

    def _record_end(self, data: bytes) -> int:
        """Just after the last line break outside quotes (an even number of ``"`` before it; a doubled quote
        inside a quoted field counts twice), else after the last line break when the rest would be longer
        than ``max_line_bytes``."""
        last = data.rfind(b"\n") + 1
        cut, quotes = last, data.count(b'"', 0, last)
        while quotes % 2 and cut > 0 and len(data) - cut <= self.limits.max_line_bytes:
            before = data.rfind(b"\n", 0, cut - 1) + 1
            quotes -= data.count(b'"', before, cut)
            cut = before
        return cut if quotes % 2 == 0 and len(data) - cut <= self.limits.max_line_bytes else last

    def _check_lines(self, chunk: bytes, pending: bytes) -> None:
        """Refuses a line longer than ``max_line_bytes``: every stretch of that many bytes past a line's start
        must hold a line break. One backward search per ``max_line_bytes`` of the chunk (a 64 MB chunk: 64
        searches that stop at the stretch's last line break), not a scan of every byte in Python's sight."""
        limit = self.limits.max_line_bytes
        if len(pending) > limit:
            raise self._too_long()
        start = 0  # a line starts here
        while len(chunk) - start > limit:
            end = chunk.rfind(b"\n", start, start + limit + 1)  # the line from ``start`` ends at most here
            if end < 0:
                raise self._too_long()
            start = end + 1

    def _too_long(self) -> RatingsFileError:
        return RatingsFileError(
            self.path,
            f"has a line longer than max_line_bytes ({self.limits.max_line_bytes:,} bytes)",
            "Check the file (a missing line break, or a binary file?), or raise --max-line-bytes if it is genuine",
        )

    def finish(self) -> str:
        """The content hash; refuses a file that changed while it was read."""
        after = Fingerprint.of(self.fd)
        if after != self.before:
            raise FileChanged(
                self.path,
                "changed while it was read (still being written?)",
                "It is read again next night; deliver files whole (write, then rename)",
            )
        return self.hash.hexdigest()


class FileChanged(RatingsFileError):
    """A file that is still being written: skipped tonight, not parked."""
