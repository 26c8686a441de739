"""JACK2's shared-memory server registry, and clearing the entries that dead servers left in it.

jackd registers itself in /dev/shm/jack-shm-registry, a table of 8 server slots (pid, "jack-UID:NAME:").
A server that ends normally clears its slot; a server that is SIGKILLed does not, and JACK reclaims a dead
slot only when a server of the *same name* starts again. The tests give every server a unique name, so
after enough killed servers every slot is stale and jackd refuses to start: "Too many servers already
active". `clear_stale_servers()` frees the slots whose process is no longer a running jackd, under JACK's
own registry lock, and removes the socket and semaphore files those servers left in /dev/shm. Slots of
live servers (another test run's, a user's) are left alone.

Layout (JACK 1.9 common/shm.h, checked against the header's own sizes before anything is written):
magic u32 "JACK", protocol u16, type i32, size i32, hdr_len i32, entry_len i32, then 8 x {pid i32,
name char[257]} padded to hdr_len.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
from contextlib import contextmanager
from pathlib import Path

SHM_DIR = Path("/dev/shm")
REGISTRY = SHM_DIR / "jack-shm-registry"
MAGIC = 0x4A41434B
MAX_SERVERS = 8
SERVERS_AT = 24                 # offset of the first server slot
NAME_SIZE = 257                 # JACK_SERVER_NAME_SIZE + 1
REGISTRY_LOCK_KEY = 0x282929    # JACK_SEMAPHORE_KEY: a System V semaphore guards the registry
SEM_UNDO = 0x1000


class _SemBuf(ctypes.Structure):
    _fields_ = [("sem_num", ctypes.c_ushort), ("sem_op", ctypes.c_short), ("sem_flg", ctypes.c_short)]


@contextmanager
def registry_lock():
    """JACK's registry lock (what jack_shm_lock_registry takes); SEM_UNDO frees it if this process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    semid = libc.semget(REGISTRY_LOCK_KEY, 0, 0)
    if semid < 0:  # no server ever ran here: nobody else can be writing the registry
        yield
        return
    if libc.semop(semid, ctypes.byref(_SemBuf(0, -1, SEM_UNDO)), 1) < 0:
        raise OSError(ctypes.get_errno(), "cannot take the JACK registry lock")
    try:
        yield
    finally:
        libc.semop(semid, ctypes.byref(_SemBuf(0, 1, SEM_UNDO)), 1)


def is_live_jackd(pid: int) -> bool:
    """The process exists and is a JACK server (a pid reused by another program does not count)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    return comm.startswith("jackd")


def _slot_stride(buf) -> int | None:
    """Bytes per server slot, or None when the header is not the layout this module knows."""
    magic, = struct.unpack_from("<I", buf, 0)
    size, hdr_len, entry_len = struct.unpack_from("<iii", buf, 12)
    stride = (hdr_len - SERVERS_AT) // MAX_SERVERS
    if magic != MAGIC or size != len(buf) or not 4 + NAME_SIZE <= stride <= 4 + NAME_SIZE + 8 or entry_len <= 0:
        return None
    return stride


def servers(buf) -> list[tuple[int, int, str]]:
    """(slot, pid, server name) of every occupied slot."""
    stride = _slot_stride(buf)
    if stride is None:
        return []
    out = []
    for i in range(MAX_SERVERS):
        off = SERVERS_AT + i * stride
        pid, = struct.unpack_from("<i", buf, off)
        if pid:
            prefix = bytes(buf[off + 4:off + 4 + NAME_SIZE]).split(b"\0")[0].decode(errors="replace")
            out.append((i, pid, prefix.split(":", 1)[1].rstrip(":") if ":" in prefix else prefix))
    return out


def read_servers() -> list[tuple[int, int, str]]:
    if not REGISTRY.exists():
        return []
    with open(REGISTRY, "rb") as f:
        return servers(f.read())


def clear_stale_servers() -> list[str]:
    """Free the registry slots of servers whose process is gone; return their names."""
    if not REGISTRY.exists():
        return []
    cleared = []
    with registry_lock(), open(REGISTRY, "r+b") as f, mmap.mmap(f.fileno(), 0) as buf:
        stride = _slot_stride(buf)
        for slot, pid, name in servers(buf):
            if is_live_jackd(pid):
                continue
            off = SERVERS_AT + slot * stride
            buf[off:off + stride] = bytes(stride)
            cleared.append(name)
        buf.flush()
    for name in cleared:
        _remove_leftover_files(name)
    return cleared


def _remove_leftover_files(name: str) -> None:
    """The server's socket and futex files (jack_NAME_UID_*, jack_sem.UID_NAME_*), unless a jackd of that name runs."""
    if any(name in _cmdline(pid) for pid in _jackd_pids()):
        return
    uid = os.getuid()
    for pattern in (f"jack_{name}_{uid}_*", f"jack_sem.{uid}_{name}_*"):
        for p in SHM_DIR.glob(pattern):
            try:
                p.unlink()
            except OSError:
                pass


def _jackd_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and is_live_jackd(int(p.name))]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []
