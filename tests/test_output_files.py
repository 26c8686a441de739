"""Output paths: written through symlinks, never a device node, FIFO or socket replaced by a file."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from cuecast.engine.timeline import write_json
from cuecast.streams.files import NotRegularFileError, replacing


def compose(out, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "compose", "--generator", "arranger",
                           "--valence", "0.5", "--arousal", "0.2", "--seconds", "2", "-o", str(out), *extra],
                          capture_output=True, text=True, timeout=120)


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cuecast: error: ") and "Traceback" not in r.stderr
    return lines[0]


def test_dev_null_is_refused_and_left_alone():
    before = os.stat("/dev/null")
    line = one_error_line(compose("/dev/null"))
    assert "/dev/null" in line and "character device" in line
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino and after.st_rdev == before.st_rdev


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_full_device_node_is_never_replaced_even_as_root(tmp_path):
    node = tmp_path / "full"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # the device /dev/full is
    line = one_error_line(compose(node))
    assert "character device" in line
    assert stat.S_ISCHR(os.stat(node).st_mode) and os.stat(node).st_rdev == os.makedev(1, 7)
    assert os.listdir(tmp_path) == ["full"]  # no temporary file left beside it


def test_fifo_target_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "pipe.mid"
    os.mkfifo(fifo)
    line = one_error_line(compose(fifo))
    assert "named pipe" in line
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_socket_and_directory_targets_are_refused(tmp_path):
    path = tmp_path / "sock"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(path))
        with pytest.raises(NotRegularFileError, match="socket"):
            write_json(path, {})
    finally:
        s.close()
    with pytest.raises(NotRegularFileError, match="directory"):
        write_json(tmp_path, {})


def test_symlink_is_written_through(tmp_path):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = real_dir / "music.mid"
    real.write_bytes(b"old")
    link = tmp_path / "link.mid"
    link.symlink_to(real)
    r = compose(link)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes()[:4] == b"MThd"
    assert sorted(os.listdir(real_dir)) == ["music.mid"] and sorted(os.listdir(tmp_path)) == ["link.mid", "real"]


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "made.json")
    write_json(link, {"a": 1})
    assert link.is_symlink() and (tmp_path / "made.json").read_text().strip().startswith("{")


def test_symlink_to_a_device_is_refused(tmp_path):
    link = tmp_path / "sneaky.mid"
    link.symlink_to("/dev/null")
    line = one_error_line(compose(link))
    assert "/dev/null" in line and "character device" in line
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []
