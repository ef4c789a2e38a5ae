"""The one timeout helper: run a decoder step in a worker thread, and turn every failure into ``VideoReadError``.

A decoder stuck inside C code cannot be killed: on timeout its thread is abandoned (a daemon, so it never
blocks interpreter exit) and the caller must not touch the object that thread was using again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .._errors import DecodeTimeout, VideoReadError

__all__ = ["DecodeTimeout", "describe", "guarded", "run_with_timeout"]

_T = TypeVar("_T")


def run_with_timeout(fn: Callable[[], _T], timeout: float | None) -> _T:
    """Run ``fn`` in a daemon thread and wait at most ``timeout`` seconds (``None`` or ``<= 0``: inline)."""
    if timeout is None or timeout <= 0:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="tspo-video-decode", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise DecodeTimeout()
    if "error" in box:
        raise box["error"]
    return box["value"]


def guarded(
    fn: Callable[[], _T],
    *,
    label: str,
    timeout: float | None,
    what: str,
    failure: str = "error",
    hide: str | None = None,
) -> _T:
    """``fn()`` under ``timeout``; failures become ``VideoReadError(label, ...)``.

    ``what`` completes "while ..." in messages; ``failure`` starts the message of an unexpected exception
    (``"decord failed"``); ``hide`` is a private temporary path replaced by ``label`` in messages.
    """
    try:
        return run_with_timeout(fn, timeout)
    except DecodeTimeout:
        raise VideoReadError(label, f"decoder timed out after {timeout:g}s while {what}") from None
    except VideoReadError as exc:
        if hide and hide != label and hide in exc.reason:
            raise VideoReadError(label, exc.reason.replace(hide, label)) from exc
        raise
    except Exception as exc:
        raise VideoReadError(label, f"{failure} while {what}: {describe(exc)}") from exc


def describe(exc: BaseException) -> str:
    """One line for an exception (decord's C++ errors carry a stack trace: keep the line that matters)."""
    text = str(exc).strip().splitlines()
    lines = [ln.strip() for ln in text if ln.strip() and not ln.strip().startswith(("Stack trace", "[bt]"))]
    msg = next((ln for ln in lines if "Check failed" in ln or "ERROR" in ln), lines[0] if lines else "")
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
