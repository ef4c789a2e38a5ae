"""Whole-file outputs (a contact sheet, an exported index) written last and atomically.

A run checks its output paths first (:func:`~tspo_sampler.io.check_writable`, which creates nothing) and writes
only once it has something to write: to a temporary file beside the output, renamed over it when complete. A
failure leaves neither a partial file nor the directories it created.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output"]


def _missing_parents(directory: Path) -> list[Path]:
    """The directories ``mkdir(parents=True)`` would create for ``directory``, innermost first."""
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    return missing


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to (same directory, same suffix, so writers that go by the
    extension still work); renamed onto ``path`` when the block succeeds, removed when it fails.

    Missing parent directories are created on entry and removed again if the block fails.
    """
    p = Path(path)
    created = _missing_parents(p.parent)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{p.suffix}")
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        for directory in created:  # innermost first; a directory someone else filled meanwhile stays
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
