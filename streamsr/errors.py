"""One family of errors. The CLI turns each into one line and a non-zero exit."""
from __future__ import annotations


class StreamSRError(Exception):
    """Base of every error streamsr raises on purpose."""

    exit_code = 1


class InputError(StreamSRError, ValueError):
    """The input (file, stream, image) is missing, unreadable or unusable."""

    exit_code = 2


class OutputError(StreamSRError, OSError):
    """The output cannot be written where the user asked."""

    exit_code = 3


class ConfigError(StreamSRError, ValueError):
    """A bad option, config key or value."""

    exit_code = 2


class ModelError(StreamSRError, LookupError):
    """An unknown model, a model without a card, or a card that does not fit."""

    exit_code = 2


class BackendUnavailable(StreamSRError, RuntimeError):
    """An inference engine was asked for but its package or hardware is missing."""

    exit_code = 4


class PipelineError(StreamSRError, RuntimeError):
    """A pipeline stage failed; the cause is chained."""

    exit_code = 1
