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


class EntryMadeForAnother(CacheEntryError):
    """A sound cache entry that records another key than the one it sits under: a file copied into place."""


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


# ---- tspo serve: each carries its HTTP status and OpenAI's error type (see tspo_sampler.serving._errors)
class ServeError(TSPOError, RuntimeError):
    """A request ``tspo serve`` answers with an error; ``status`` and OpenAI's ``type`` say which kind."""

    status = 500
    type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class BadRequestError(ServeError, ValueError):
    """400: no question, a refused or unreadable video, a bad ``tspo`` field, a video over the size limit."""

    status = 400
    type = "invalid_request_error"


class AuthenticationError(ServeError, PermissionError):
    """401: the proxy was started with ``--api-key-env`` and the request has not got that key."""

    status = 401
    type = "authentication_error"


class ServerBusyError(ServeError):
    """429: every selection slot is busy and the waiting queue is full."""

    status = 429
    type = "rate_limit_error"


class UpstreamUnreachableError(ServeError, ConnectionError):
    """502: the upstream server did not answer (connection refused, reset, DNS)."""

    status = 502
    type = "upstream_error"


class UpstreamTimeoutError(ServeError, TimeoutError):
    """504: the upstream server did not answer in time."""

    status = 504
    type = "upstream_timeout"


class VideoDamageWarning(TSPOError, UserWarning):
    """A video was read in part: damaged data cost some frames, or the file ends before its stated duration.

    A :class:`TSPOError` too, so that with warnings turned into errors (``-W error``) ``except TSPOError`` catches it.
    """
