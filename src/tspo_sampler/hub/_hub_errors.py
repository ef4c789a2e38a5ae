"""Say why a Hub checkpoint could not be had, in the newcomer's terms: downloads are switched off, the Hub
cannot be reached, or the repo or revision does not exist; and say what to do instead."""

from __future__ import annotations

from .._errors import CheckpointError

USE_LOCAL = (
    "or pass a local checkpoint directory instead: `--model DIR` on the command line, `from_pretrained(DIR)` in Python"
)


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def explain_hub_error(exc: Exception, name: str, revision: str | None, local_files_only: bool) -> CheckpointError:
    """A :class:`CheckpointError` for a failed ``snapshot_download`` of ``name`` that names the case."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = revision or "main"
    if isinstance(exc, HFValidationError):
        return CheckpointError(f"{name!r} is neither a directory nor a valid Hub repo id ({exc}); {USE_LOCAL}")
    if isinstance(exc, RevisionNotFoundError):
        return CheckpointError(
            f"the Hub repo {name} has no revision {rev!r} (branch, tag or commit); check --revision, {USE_LOCAL}"
        )
    if isinstance(exc, GatedRepoError):
        return CheckpointError(
            f"the Hub repo {name} is gated: accept its terms on the Hub and log in (`hf auth login`), {USE_LOCAL}"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return CheckpointError(
            f"there is no model repo {name} on the Hugging Face Hub (or it is private and no token was given); "
            f"check the id, {USE_LOCAL}"
        )
    chain = _causes(exc)
    offline = local_files_only or bool(constants.HF_HUB_OFFLINE)
    offline = offline or any(isinstance(e, OfflineModeIsEnabled) for e in chain)
    if isinstance(exc, LocalEntryNotFoundError) and offline:
        switch = "local_files_only=True (--local-files-only)" if local_files_only else "HF_HUB_OFFLINE is set"
        return CheckpointError(
            f"{name} (revision {rev}) is not in the Hugging Face cache and downloads are off ({switch}); "
            f"download it once with the network on, {USE_LOCAL}"
        )
    if isinstance(exc, LocalEntryNotFoundError):
        # huggingface_hub raises this when the Hub cannot be reached and the cache has no copy.
        reason = _first_line(chain[-1]) if len(chain) > 1 else "no connection"
        return CheckpointError(
            f"cannot reach the Hugging Face Hub ({constants.ENDPOINT}) to download {name} (revision {rev}), "
            f"and the cache has no copy ({reason}); check the network connection, {USE_LOCAL}"
        )
    return CheckpointError(
        f"could not fetch checkpoint {name} (revision {rev}) from the Hub ({_first_line(exc)}); {USE_LOCAL}"
    )
