"""Output paths that never lose a finished result.

* :func:`prepare_output_dir` — checked (created, writable, not a file) **before** any work
  starts, so a long fit cannot die at the end on an unwritable folder.
* :func:`atomic_write_text` / :func:`atomic_path` — written to a temporary name in the same
  folder and renamed into place (a crash leaves the old file or the new one, never half of
  one), without following a symlink planted at the destination.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["prepare_output_dir", "check_writable_file", "atomic_write_text", "atomic_path"]


def prepare_output_dir(path, what: str = "output folder") -> Path:
    """Create ``path`` if needed and check that files can be written in it (ValueError if not)."""
    p = Path(os.fspath(path))
    if p.exists() and not p.is_dir():
        raise ValueError(f"{what} {str(p)!r} exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".jaxgrad_write_test_", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{what} {str(p)!r} is not writable ({e.strerror or e}); choose another one "
                         "before the fit starts") from None
    return p


def check_writable_file(path, what: str = "output file") -> Path:
    """Check that ``path`` can be written (its folder exists or can be made, it is not a folder)."""
    p = Path(os.fspath(path))
    if p.is_dir():
        raise ValueError(f"{what} {str(p)!r} is a folder, not a file")
    prepare_output_dir(p.parent if str(p.parent) else Path("."), f"folder of {what}")
    return p


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically
    (a symlink at ``path`` is replaced, not followed)."""
    p = Path(os.fspath(path))
    # same folder (rename is atomic there) and same extension (writers pick formats by it)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.stem}.tmp.", suffix=p.suffix, dir=p.parent if str(p.parent) else ".")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(os.fspath(path))
