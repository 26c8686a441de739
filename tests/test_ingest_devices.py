"""Capture devices: `cuecast ports` lists the v4l2 nodes with their drivers' names."""

from __future__ import annotations

import json
import subprocess
import sys

from cuecast.engine.commands.ports import video_devices


def test_video_devices_from_sysfs(tmp_path):
    for n, name in ((10, "Loopback"), (0, "USB Capture HDMI"), (2, "")):
        d = tmp_path / f"video{n}"
        d.mkdir()
        if name:
            (d / "name").write_text(name + "\n")
    devices, note = video_devices(tmp_path)
    assert note is None
    assert devices == [{"path": "/dev/video0", "name": "USB Capture HDMI"}, {"path": "/dev/video2", "name": ""},
                       {"path": "/dev/video10", "name": "Loopback"}]
    assert video_devices(tmp_path / "none") == ([], "no video capture devices (/dev/video*)")


def test_ports_shows_video_devices():
    r = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "ports", "--json"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "video_devices" in json.loads(r.stdout)
    plain = subprocess.run([sys.executable, "-m", "cuecast.engine.cli", "ports"], capture_output=True, text=True, timeout=60)
    assert "video capture devices" in plain.stdout
