"""Exception hierarchy: every error the library raises on purpose derives from :class:`TSPOError`."""

from __future__ import annotations


class TSPOError(Exception):
    """Base class of the errors raised by tspo-sampler."""


class VideoReadError(TSPOError):
    """A video could not be read: missing, empty, truncated, corrupt, audio-only, or a stalled decoder.

    ``source`` names the file (or ``<bytes>`` / ``<file object>``), ``reason`` says why.
    """

    def __init__(self, source: object, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"cannot read video {self.source!s}: {reason}")


class CheckpointError(TSPOError):
    """A checkpoint is missing files, has no agent weights, or has weights of the wrong shape."""


class InvalidArgumentError(TSPOError, ValueError):
    """An argument has a value the library cannot use; the message names the argument."""


class ArgumentTypeError(TSPOError, TypeError):
    """An argument has a type the library cannot use; the message names the argument."""


class VideoDamageWarning(UserWarning):
    """A video was read in part: damaged data cost some frames, or the file ends before its stated duration."""
