"""The install self-check: an encoder that does not import because the installed packages do not fit together
becomes one line that names the versions and the fix.

The common case is a torchvision built for another torch (``pip install`` of one without the other): importing
transformers' ``CLIPModel`` then fails with ``Could not import module 'CLIPModel'. Are this object's requirements
defined correctly?``, and only the cause chain says ``operator torchvision::nms does not exist``.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

from .._errors import InstallError

__all__ = ["deferred_scipy_optimize", "explain_import_failure", "install_check", "matching_torchvision"]

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(not installed)"


def matching_torchvision(torch_version: str) -> str | None:
    """The torchvision release series built for ``torch_version`` (torch 2.N pairs with torchvision 0.N+15)."""
    m = re.match(r"2\.(\d+)", torch_version)
    return f"0.{int(m.group(1)) + 15}.*" if m else None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and all(cur is not e for e in seen):
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def explain_import_failure(exc: BaseException, what: str) -> InstallError:
    """An :class:`InstallError` for ``exc``, raised while importing ``what``: the versions, the cause, the fix."""
    torch_v, vision_v, hf_v = _version("torch"), _version("torchvision"), _version("transformers")
    chain = _chain(exc)
    root = chain[-1]
    series = matching_torchvision(torch_v)
    index = f" --index-url {CPU_INDEX}" if "+cpu" in torch_v else ""
    fix_vision = f'pip install "torchvision=={series}"{index}' if series else f"pip install torchvision{index}"
    mismatch = any("torchvision::" in str(e) for e in chain)
    if series and vision_v[0].isdigit():
        mismatch = mismatch or not re.match(series.replace(".", r"\.").replace("*", ""), vision_v)
    if mismatch:
        return InstallError(
            f"torch {torch_v} and torchvision {vision_v} do not match ({_first_line(root)}), so {what} cannot "
            f"be imported; install the torchvision built for this torch: {fix_vision}"
        )
    return InstallError(
        f"{what} cannot be imported with torch {torch_v}, torchvision {vision_v} and transformers {hf_v} "
        f"({type(root).__name__}: {_first_line(root)}); reinstall them together: "
        f'pip install --force-reinstall "torch=={torch_v.split("+")[0]}" '
        f'"torchvision=={series or "*"}" "transformers=={hf_v}"{index}'
    )


@contextmanager
def install_check(what: str, package: str) -> Iterator[None]:
    """Run an import of ``what`` (from ``package``); a failure inside it becomes an :class:`InstallError`.

    ``package`` itself missing stays the plain ``ModuleNotFoundError`` (the optional-extra message is elsewhere).
    """
    try:
        yield
    except InstallError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name == package and exc.__cause__ is None:
            raise
        raise explain_import_failure(exc, what) from exc
    except (ImportError, RuntimeError, AttributeError, OSError) as exc:
        raise explain_import_failure(exc, what) from exc


def _scipy_optimize_stand_in() -> types.ModuleType:
    """A stand-in for ``scipy.optimize``: any name taken from it brings in the real module (then that name)."""
    stand_in = types.ModuleType("scipy.optimize")

    def _real() -> types.ModuleType:
        if sys.modules.get("scipy.optimize") is stand_in:
            del sys.modules["scipy.optimize"]
        return importlib.import_module("scipy.optimize")

    def linear_sum_assignment(*args: Any, **kwargs: Any) -> Any:
        return _real().linear_sum_assignment(*args, **kwargs)

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # the import system's own probes (__path__, ...) must not load scipy
            raise AttributeError(name)
        return getattr(_real(), name)

    stand_in.linear_sum_assignment = linear_sum_assignment  # type: ignore[attr-defined]
    stand_in.__getattr__ = __getattr__  # type: ignore[method-assign]
    return stand_in


@contextmanager
def deferred_scipy_optimize() -> Iterator[None]:
    """While transformers' model code is first imported, ``scipy.optimize`` is only imported when first used.

    ``transformers.modeling_utils`` imports its object-detection losses, which run
    ``from scipy.optimize import linear_sum_assignment`` whenever scipy is installed (the ``all`` extra brings it
    through lmms-eval, scikit-learn and sentence-transformers): about 40 MB of resident memory (scipy's own
    OpenBLAS, sparse, linalg) that a CLIP encoder never uses. Those modules get a ``linear_sum_assignment``
    that imports the real one on its first call; the stand-in is gone from ``sys.modules`` afterwards, so any
    later ``import scipy.optimize`` is the real module.
    """
    if (
        "scipy.optimize" in sys.modules
        or "transformers.modeling_utils" in sys.modules
        or importlib.util.find_spec("scipy") is None
    ):
        yield
        return
    stand_in = _scipy_optimize_stand_in()
    sys.modules["scipy.optimize"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("scipy.optimize") is stand_in:
            del sys.modules["scipy.optimize"]
