"""A real browser as the source: headless Chromium with its fake camera opens cuecast's page with ?autostart=1,
sends over WebRTC, and the engine plays MIDI to a real JACK port; the soundtrack comes back to the page as
audio. Browser and server run inside a network namespace with only `lo` up, so ICE can offer nothing but
loopback and no packet leaves the machine. JACK talks over shared memory and unix sockets, which a network
namespace does not separate, so the JACK server and the receiver stay outside."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from jack_server import JackReceiver, jack  # noqa: F401 - `jack` is a fixture
from media_check import decode

from cuecast.streams.webrtc import is_loopback, parse_spec
from cuecast.types import SourceError

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--autoplay-policy=no-user-gesture-required", "--disable-gpu", "--mute-audio",
                  # ICE candidates on loopback (Chromium leaves loopback out, and hides addresses behind mDNS names)
                  "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns"]
PORT = 8090


def test_spec():
    assert parse_spec("webrtc") == ("127.0.0.1", 8080, "")
    assert parse_spec("webrtc:9000") == ("127.0.0.1", 9000, "")
    assert parse_spec("webrtc:0.0.0.0:9000?token=abc") == ("0.0.0.0", 9000, "abc")
    assert parse_spec("webrtc:[::1]:9001") == ("::1", 9001, "")
    with pytest.raises(SourceError, match="port"):
        parse_spec("webrtc:host:http")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")


@pytest.fixture(scope="module")
def netns():
    if shutil.which("ip") is None:
        pytest.skip("`ip` (iproute2) is missing: the WebRTC test runs browser and server in a network namespace")
    name = f"cuecast-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot make a network namespace here ({r.stderr.strip()}): needs root or CAP_SYS_ADMIN")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        # aioice (aiortc's ICE) never offers 127.0.0.1 itself; a second loopback address gives the server a
        # candidate, still on `lo`, still unreachable from outside the namespace
        subprocess.run(["ip", "-n", name, "addr", "add", "127.0.0.2/32", "dev", "lo"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture
def rx(jack):  # noqa: F811
    r = JackReceiver(client=f"webrtc{time.monotonic_ns() % 10**9}")
    yield r
    r.close()


def in_ns(ns: str, cmd: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], **kw)


def cuecast(ns: str, source: str, outputs: list[str], *extra) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cuecast.engine.cli", "live", "--source", source, "--lookahead", "1",
           "--generator", "arranger", "-q", *extra]
    for o in outputs:
        cmd += ["--midi-out", o]
    return in_ns(ns, cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def page_url(proc: subprocess.Popen, timeout: float = 60.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if "open http" in line:
            return line.split("open ", 1)[1].split()[0]
        if not line and proc.poll() is not None:
            pytest.fail(f"cuecast ended before serving the page: {proc.stderr.read()[-800:]}")
    pytest.fail("cuecast did not serve the page")


ASK = r"""
import json, sys, urllib.request, urllib.error
def ask(path, body=None):
    req = urllib.request.Request(sys.argv[1] + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
out = {}
for name, path, body in json.loads(sys.argv[2]):
    out[name] = ask(path, body)
print(json.dumps(out))
"""


def ask(ns: str, base: str, requests: list) -> dict:
    """HTTP requests from inside the namespace: {name: (status, body)}."""
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", ASK, base, json.dumps(requests)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return {k: tuple(v) for k, v in json.loads(r.stdout).items()}


@pytest.fixture
def chromium():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium): the WebRTC test drives a real browser")
    started: list[subprocess.Popen] = []

    def start(ns: str, url: str, profile) -> subprocess.Popen:
        p = in_ns(ns, [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_browser_camera_to_jack_midi_and_soundtrack_back(netns, rx, chromium, tmp_path):
    proc = cuecast(netns, f"webrtc:127.0.0.1:{PORT}", [f"jack:{rx.full_name}"], "--record", str(tmp_path / "rec"),
                   "--duration", "90")
    try:
        url = page_url(proc)
        assert url == f"http://127.0.0.1:{PORT}/"  # loopback: no token needed
        chromium(netns, url + "?autostart=1", tmp_path / "profile")
        end = time.monotonic() + 120  # a deadline for a loaded machine, not a speed claim
        status: dict = {}
        while time.monotonic() < end:
            assert proc.poll() is None, proc.stderr.read()[-800:]
            status = json.loads(ask(netns, url, [["status", "status", None]])["status"][1])
            if rx.note_ons() >= 12 and status.get("emotion") and status["frames"] > 20:
                break
            time.sleep(0.5)
        assert rx.note_ons() >= 12, "no music reached the JACK port from the browser's picture"
        assert status["connected"] and status["width"] > 0 and status["tempo"] > 0, status
        assert status["emotion"] in ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"), status
        code, body = ask(netns, url, [["second", "offer", {"sdp": "v=0\r\n", "type": "offer"}]])["second"]
        assert code == 409 and "already the source" in json.loads(body)["error"]  # a second browser is refused
        while time.monotonic() < end:  # the page reports what it hears of the soundtrack every half second
            peer = json.loads(ask(netns, url, [["status", "status", None]])["status"][1])["peer"]
            if peer.get("audio_energy", 0) > 0 and peer.get("audio_packets", 0) > 20:
                break
            time.sleep(0.5)
    finally:
        err = interrupt(proc)
    assert proc.returncode == 128 + signal.SIGINT, err[-800:]
    assert "Traceback" not in err
    time.sleep(0.05)
    rx.drain()
    assert rx.unmatched() == set() and rx.unmatched(strict=True) == set()
    tl = json.loads((tmp_path / "rec" / "timeline.json").read_text())
    webrtc = tl["stream"]
    assert webrtc["kind"] == "webrtc" and webrtc["frames"] > 20
    assert webrtc["peer"]["audio_packets"] > 20, webrtc  # the soundtrack came back to the browser...
    assert webrtc["peer"]["audio_energy"] > 0, webrtc  # ...and it was not silence


def interrupt(proc) -> str:
    """Ctrl-C for cuecast (if it still runs), as a user ends a live run; its stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=60)[1]


def test_other_address_needs_the_token(netns, tmp_path):
    proc = cuecast(netns, f"webrtc:0.0.0.0:{PORT + 1}", ["none"], "--duration", "60")
    try:
        url = page_url(proc)
        base, _, token = url.partition("?token=")
        assert len(token) >= 12
        replies = ask(netns, base, [["bare", "", None], ["page", f"?token={token}", None],
                                    ["offer", "offer", {"sdp": "v=0\r\n", "type": "offer"}],
                                    ["wrong", "status?token=x" + token, None],
                                    ["overlay", "overlay", None], ["overlay_ok", f"overlay?token={token}", None]])
        assert replies["bare"][0] == 403 and "token" in replies["bare"][1]
        assert replies["page"][0] == 200 and "cuecast" in replies["page"][1]
        assert replies["offer"][0] == 403 and replies["wrong"][0] == 403
        assert replies["overlay"][0] == 403 and replies["overlay_ok"][0] == 200  # the overlay on the same server
    finally:
        interrupt(proc)


def test_browser_camera_to_video_out_file(netns, chromium, tmp_path):
    """The browser's pictures (and its microphone, mixed under the music) into --video-out, which a
    WebRTC source feeds through its tap like any other: a file with the picture and the soundtrack."""
    out = tmp_path / "out.mkv"
    proc = cuecast(netns, f"webrtc:127.0.0.1:{PORT + 2}", ["none"], "--video-out", str(out),
                   "--mix-input-audio", "0.3")
    try:
        url = page_url(proc)
        chromium(netns, url + "?autostart=1", tmp_path / "profile")
        end = time.monotonic() + 120  # a deadline for a loaded machine, not a speed claim
        part = []
        while time.monotonic() < end and sum(p.stat().st_size for p in part) < 150_000:
            assert proc.poll() is None, proc.stderr.read()[-800:]
            time.sleep(0.2)  # pictures go out once their music plays, a lookahead after they came
            part = [p for p in tmp_path.iterdir() if p.name.endswith(".part.mkv")]
    finally:
        err = interrupt(proc)
    assert proc.returncode == 128 + signal.SIGINT, err[-800:]
    assert "Traceback" not in err
    times, _, audio, rate, kinds, a0 = decode(str(out))
    assert kinds == ["video", "audio"]
    written = int(re.search(r"video out: (\d+) pictures written", err).group(1))
    assert len(times) == written > 20
    assert rate == 48000 and a0 + len(audio) / rate >= times[-1] - 1024 / rate  # sound under the whole picture
    assert float(np.sqrt(np.mean(audio ** 2))) > 1e-3  # and not silence
