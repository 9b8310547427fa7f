"""Named exceptions of pyg_ssgm.

Every error a user can cause by passing bad input or pointing at bad data is one
of these, with a message that says what to fix. They subclass the built-in
exception a caller would expect (``ValueError``, ``FileNotFoundError``,
``ImportError``) so generic handlers keep working.
"""


class SSGMError(Exception):
    """Base class of every error raised on purpose by pyg_ssgm."""


class InvalidInputError(SSGMError, ValueError):
    """An argument or tensor has the wrong shape, type or value (NaN, empty graph...)."""


class ConfigError(SSGMError, ValueError):
    """A configuration value is out of range or inconsistent with another."""


class DatasetError(SSGMError):
    """Base class of the errors raised while reading a dataset from disk."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset root (or a file it must contain) does not exist."""


class MalformedAnnotationError(DatasetError, ValueError):
    """An annotation file exists but cannot be parsed; the message names the file."""


class MissingExtraError(SSGMError, ImportError):
    """An optional dependency is needed; the message names the pip extra that installs it."""


class CheckpointError(SSGMError, ValueError):
    """A checkpoint is missing, corrupt or incompatible with the requested model."""


class OutputPathError(SSGMError, OSError):
    """An output folder or file cannot be written: a file stands where a folder belongs (or the
    reverse), or it cannot be created. Raised before any work is done, so nothing is lost."""


class MetricsLogError(SSGMError, ValueError):
    """A run's ``metrics.csv`` cannot be read back (on ``--resume`` or by ``read_metrics``); the
    file is left as it is."""


def require(module: str, extra: str):
    """Import an optional dependency or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            f"'{module}' is needed for this feature but is not installed. "
            f"Install it with: pip install 'pyg_ssgm[{extra}]'"
        ) from e
