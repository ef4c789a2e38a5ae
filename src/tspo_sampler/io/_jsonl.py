"""JSON Lines files that survive a kill: one writer for every line, repair of a torn last line, tolerant reading."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def jsonl_line(record: dict[str, Any]) -> bytes:
    """``record`` as one UTF-8 JSON line (newline included): the single line format of every JSONL file
    the package writes (index outputs, parts, merges, training metrics, the lmms-eval sidecar), so all of
    them read and diff alike."""
    return (json.dumps(record, ensure_ascii=False, separators=(", ", ": ")) + "\n").encode("utf-8")


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append ``record`` to ``path`` as one line in one write (parent folders are created).

    For occasional lines (a log beside an evaluation); a long run appends through :class:`JsonlAppender`.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("ab") as f:
        f.write(jsonl_line(record))


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise ``OSError("cannot write PATH: reason")`` unless a file can be created (or appended to) at ``path``.

    Cheap enough to call before loading a model, so a run that could never save its output fails at once. It
    creates nothing: missing parent directories are checked by probing the nearest directory that exists (where
    the writer will create them, once it has something to write).
    """
    p = Path(path)
    ancestor = p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    try:
        if not ancestor.is_dir():
            raise NotADirectoryError(f"{ancestor} is not a directory")
        if p.is_dir():
            raise IsADirectoryError("it is a directory")
        try:
            fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".probe", dir=ancestor)
        except OSError as exc:
            raise OSError(f"cannot create files in {ancestor} ({exc.strerror or exc})") from exc
        os.close(fd)
        os.unlink(probe)
        if p.exists():
            with p.open("ab"):
                pass
    except OSError as exc:
        reason = str(exc)
        if exc.strerror:
            reason = exc.strerror if exc.filename in (None, str(p)) else f"{exc.strerror}: {exc.filename}"
        raise OSError(f"cannot write {p}: {reason}") from exc


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def repair_jsonl(path: str | os.PathLike[str]) -> int:
    """Cut a half-written last line (no trailing newline) off an append-only JSONL file.

    Returns the number of bytes removed (0 when the file ends cleanly or does not exist).
    """
    p = Path(path)
    if not p.exists():
        return 0
    size = p.stat().st_size
    if size == 0:
        return 0
    with p.open("rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # find the last newline, reading backwards in blocks
        pos = size
        keep = 0
        block = 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


class JsonlAppender:
    """Append JSON records to a file, one line each, durable line by line (``flush`` + ``fsync``).

    Opening repairs a half-written last line left by a crash (see :func:`repair_jsonl`).
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        removed = repair_jsonl(self.path)
        if removed:
            logger.warning("%s: dropped a half-written last line (%d bytes) left by an interrupted run",
                           self.path, removed)
        self._fsync = fsync
        self._f = self.path.open("ab")

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(jsonl_line(record))  # one write: a kill leaves at most one partial line
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_jsonl_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Complete records of a JSONL file; a half-written or damaged line is skipped with a warning."""
    p = Path(path)
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                logger.warning("%s:%d: ignoring a half-written last line", p, lineno)
                return
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                logger.warning("%s:%d: ignoring a damaged line", p, lineno)
                continue
            if isinstance(obj, dict):
                yield obj



def write_jsonl_atomic(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """Write ``records`` to ``path`` as a whole: a temporary file in the same directory, ``fsync``, rename.

    A reader sees the old file or the new one, never a mix. Returns the number of records written.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.merging-{os.getpid()}")
    n = 0
    try:
        with tmp.open("wb") as f:
            for rec in records:
                f.write(jsonl_line(rec))
                n += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(p.parent)
    return n
