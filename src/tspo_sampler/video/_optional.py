"""Optional backends (decord, torchcodec) are imported on first use; when one cannot be, say why.

"Not installed" (the package itself is not found) is the usual case and stays quiet under
``backend="auto"``. Anything else is a broken install: a shared library that does not load (``OSError``),
a symbol missing from a torch the package was not built for (``ImportError``), the package's own loader
giving up (``RuntimeError``), or a dependency of it that is missing. That is logged once as a warning, and
a backend asked for by name raises a :class:`~tspo_sampler.VideoReadError` whose message carries the cause.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from .._errors import VideoReadError

__all__ = ["import_optional", "unavailable"]

log = logging.getLogger("tspo_sampler.video")

_MAX_CAUSE_CHARS = 800
_failures: dict[str, tuple[str, BaseException]] = {}  # package -> (why, the exception) of the last failed import
_warned: set[str] = set()


def _install_hint(package: str, extra: str) -> str:
    return f"pip install 'tspo-sampler[{extra}]'" if extra else f"pip install {package}"


def _cause(exc: BaseException) -> str:
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if len(text) > _MAX_CAUSE_CHARS:
        text = text[:_MAX_CAUSE_CHARS] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def import_optional(module: str, *, extra: str = "") -> Any | None:
    """``module`` imported, or ``None`` when it cannot be; :func:`unavailable` then says why."""
    package = module.partition(".")[0]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == package:
            _failures[package] = (f"{package} is not installed ({_install_hint(package, extra)})", exc)
            return None
        _broken(package, exc, extra)
        return None
    except Exception as exc:  # noqa: BLE001  (any failure at import is reported, with its cause)
        _broken(package, exc, extra)
        return None
    _failures.pop(package, None)
    return mod


def _broken(package: str, exc: BaseException, extra: str) -> None:
    why = (
        f"{package} is installed but cannot be imported ({_cause(exc)}); reinstall it "
        f"({_install_hint(package, extra)}) or uninstall it to decode with PyAV"
    )
    _failures[package] = (why, exc)
    if package not in _warned:
        _warned.add(package)
        log.warning("%s", why)


def unavailable(package: str, label: str, *, extra: str = "") -> VideoReadError:
    """The error for a backend asked for by name that did not import, chained to the import failure."""
    why, cause = _failures.get(package, (f"{package} is not installed ({_install_hint(package, extra)})", None))
    err = VideoReadError(label, why)
    err.__cause__ = cause
    return err
