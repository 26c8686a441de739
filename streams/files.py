"""Output files that appear whole or not at all."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: os.umask can only be read by setting it
FILE_MODE = 0o666 & ~_UMASK  # mkstemp makes 0600; outputs follow the umask like any other file

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))


class NotRegularFileError(OSError):
    """The output path names something that is not a regular file (a device, a FIFO, a folder)."""


def output_target(path: str | Path) -> Path:
    """Where writing `path` really lands: symlinks followed (the link stays, its target gets the file).

    Refuses an existing target that is not a regular file, so an atomic replace can never swap a device
    node (/dev/null, /dev/full), a FIFO or a socket for a file, even when run as root.
    """
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError:
        return target  # unreadable: the write itself says why
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        what = f"it leads to {target}, {kind}" if str(target) != os.path.abspath(path) else f"it is {kind}"
        raise NotRegularFileError(errno.EINVAL, f"{what}; cuecast writes regular files only")
    return target


@contextmanager
def replacing(path: str | Path, suffix: str = ".part") -> Iterator[Path]:
    """A temporary path beside `path` to write to; it takes the final name only if the block succeeds.

    A failed or interrupted write leaves nothing behind, so a file with the final name is always complete.
    A symlink is written through (its target is replaced, the link stays); a target that is not a regular
    file is refused (NotRegularFileError). OSError (an unwritable folder, a full disk) propagates for the
    caller to word.
    """
    target = output_target(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=str(target.parent))
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        output_target(target)  # once more just before the swap: nothing else may have appeared there
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
