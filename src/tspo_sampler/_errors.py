"""Every exception class of tspo-sampler, in one place.

Each derives from :class:`TSPOError` and from the standard class that fits (``ValueError``, ``OSError``,
``TimeoutError``...), so both ``except TSPOError`` and the usual ``except ValueError`` catch it.
"""

from __future__ import annotations


class TSPOError(Exception):
    """Base class of the errors raised by tspo-sampler."""


class VideoReadError(TSPOError, OSError):
    """A video could not be read: missing, empty, truncated, corrupt, audio-only, or a stalled decoder.

    ``source`` names the file (or ``<bytes>`` / ``<file object>``), ``reason`` says why. An ``OSError``, as
    for any file that cannot be read.
    """

    def __init__(self, source: object, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"cannot read video {self.source!s}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # rebuilt from (source, reason), not from the message, when sent to another process
        return type(self), (self.source, self.reason)


class CheckpointError(TSPOError, ValueError):
    """A checkpoint cannot be used: the sampler's is missing files, has no agent weights or weights of the
    wrong shape; a training checkpoint is damaged, incomplete, or in an older pickle format."""


class CacheEntryError(TSPOError, ValueError):
    """A feature-cache entry that cannot be trusted (unreadable, inconsistent or failing its checksum)."""


class ExportError(TSPOError, ValueError):
    """The index cannot be exported as asked (errors, gaps, duplicate or unmatched ids)."""


class RowError(TSPOError, ValueError):
    """A training-data row that cannot be used; the message says why."""


class PluginConfigError(TSPOError, ValueError):
    """A wrong lmms-eval model arg or an index that does not fit the data: stops the run (never a fallback)."""


class DecodeTimeout(TSPOError, TimeoutError):
    """A decoding step did not finish in time (its worker thread was abandoned)."""


class MissingFramesError(TSPOError, LookupError):
    """Some requested candidates did not decode (a damaged file); the search falls back to exhaustive."""


class InvalidArgumentError(TSPOError, ValueError):
    """An argument has a value the library cannot use; the message names the argument."""


class ArgumentTypeError(TSPOError, TypeError):
    """An argument has a type the library cannot use; the message names the argument."""


class TrainingDivergedError(TSPOError, FloatingPointError):
    """A training step's loss or gradient became NaN or infinite; the step is named, the agent not updated."""


class RunExistsError(TSPOError, FileExistsError):
    """A training output directory already holds an earlier run (pass resume or overwrite)."""


class InstallError(TSPOError, ImportError):
    """The installed packages do not work together (a torchvision built for another torch, a CLIP that does not
    import); the message names the versions and the command that fixes it."""


class VideoDamageWarning(TSPOError, UserWarning):
    """A video was read in part: damaged data cost some frames, or the file ends before its stated duration.

    A :class:`TSPOError` too, so that with warnings turned into errors (``-W error``) ``except TSPOError`` catches it.
    """
