"""Hints from the config reach the live engine's boundary stream (real OSC over UDP on loopback)."""

import json
import socket
import time

import pytest
from jack_server import JackReceiver, jack  # noqa: F401 - `jack` is a fixture
from pythonosc.udp_client import SimpleUDPClient
from test_live_cli import clip, live, wait_for_notes  # noqa: F401 - `clip` is a fixture

from cuecast.engine.config import ConfigError, load_config


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_hint_addresses_are_refused():
    for key, value in [("hints.osc", "nowhere"), ("hints.mqtt", "127.0.0.1:99999"), ("hints.obs", "http://x")]:
        with pytest.raises(ConfigError, match=key):
            load_config(None, {key: value})


def test_osc_hint_enters_the_timeline_with_its_source(clip, jack, tmp_path):  # noqa: F811
    rx = JackReceiver(client=f"hint{time.monotonic_ns() % 10**9}")
    try:
        port = free_udp_port()
        cfg = tmp_path / "hints.toml"
        cfg.write_text(f'[hints]\nosc = "127.0.0.1:{port}"\n')
        proc = live(clip, rx, "--config", str(cfg), "--record", str(tmp_path), "-q")
        wait_for_notes(rx, proc)
        SimpleUDPClient("127.0.0.1", port).send_message("/cuecast/cut", 0.5)  # a cut half a second from now
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-800:]
        tl = json.loads((tmp_path / "timeline.json").read_text())
        hints = [c for c in tl["cuts"] if c["source"] == "osc"]
        assert len(hints) == 1 and hints[0]["kind"] == "hint", tl["cuts"]
    finally:
        rx.close()
