"""Output files that appear whole or not at all."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: os.umask can only be read by setting it
FILE_MODE = 0o666 & ~_UMASK  # mkstemp makes 0600; outputs follow the umask like any other file


@contextmanager
def replacing(path: str | Path, suffix: str = ".part") -> Iterator[Path]:
    """A temporary path beside `path` to write to; it takes the final name only if the block succeeds.

    A failed or interrupted write leaves nothing behind, so a file with the final name is always complete.
    OSError (an unwritable folder, a full disk) propagates for the caller to word.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=str(path.parent))
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
