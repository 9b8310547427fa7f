"""Writing outputs safely: atomic writes, and output paths checked before any work is done.

Every file pyg_ssgm writes (checkpoint, ``metrics.csv``, ``config.json``, results JSON) goes
through :func:`atomic_write`: a temporary file in the same folder, then an atomic rename, so an
interruption leaves either the old file or the new one, never a truncated one. A temporary left
by a killed process (``.<name>.<random>.tmp``) is removed by the next write of the same file, or,
in a folder shared by several processes (the image-feature cache), by
:func:`remove_stale_temporaries` once it is old enough not to be another process's write.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Union

from .errors import OutputPathError

PathLike = Union[str, "os.PathLike[str]"]


def _temporaries(path: Path):
    """The temporary files :func:`atomic_write` creates for ``path`` (pattern ``.<name>.*.tmp``)."""
    return path.parent.glob(f".{path.name}.*.tmp")


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temporary file next to ``path``, flush it to disk, then rename it
    onto ``path``. Stale temporaries of ``path`` from killed writes are removed first (one writer
    per file is assumed: only the main process writes a run's files)."""
    path = Path(path)
    prepare_output_dir(path.parent)
    for stale in _temporaries(path):
        try:
            stale.unlink()
        except OSError:  # vanished meanwhile, or not ours to remove: harmless either way
            pass
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def remove_stale_temporaries(folder: PathLike, older_than: float) -> int:
    """Remove the temporaries of :func:`atomic_write` (``.<name>.*.tmp``) in ``folder`` last
    modified more than ``older_than`` seconds ago: a write takes milliseconds, so an older one was
    killed, while a younger one may be another process's write in progress. Returns how many
    were removed; a folder that does not exist has none."""
    removed, cutoff = 0, time.time() - older_than
    try:
        candidates = list(Path(folder).glob(".*.tmp"))
    except OSError:  # not a folder, or unreadable: nothing of ours to clean
        return 0
    for path in candidates:
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:  # vanished meanwhile, or not ours to remove
            pass
    return removed


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def prepare_output_dir(path: PathLike) -> Path:
    """Create the folder ``path`` (and its parents) or raise :class:`OutputPathError` saying why not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"output folder {str(path)!r} is a file; choose another folder.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a parent is a file, no permission, read-only file system...
        raise OutputPathError(f"cannot create the output folder {str(path)!r} ({e.strerror or e}); "
                              "choose another folder.") from e
    return path


def check_output_file(path: PathLike) -> Path:
    """Check, without writing anything, that the file ``path`` can be written later: it is not a
    folder, and its nearest existing parent is a writable folder. Raise :class:`OutputPathError`
    otherwise, so a long evaluation never ends in an unwritable result."""
    trailing_sep = os.fspath(path).endswith(("/", os.sep))
    path = Path(path)
    if path.is_dir() or trailing_sep:
        raise OutputPathError(f"output {str(path)!r} is a folder; give a file name (e.g. {path / 'results.json'}).")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"cannot write {str(path)!r}: {str(parent)!r} is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {str(path)!r}: no permission to write in {str(parent)!r}.")
    return path
