"""The overlay page in a real headless Chromium (loopback only, a fresh profile): it receives the engine's state
over the WebSocket and shows it on a transparent page; plus the token rule for listeners beyond loopback."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from control_rig import clip, free_port, run_engine, wait_until  # noqa: F401 - `clip` is a fixture

from cuecast.control import SetMood
from cuecast.engine.config import load_config
from cuecast.engine.errors import UserError
from cuecast.engine.remote import Remote

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                  "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=760,190"]


def chromium_exe() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Browser:
    """Headless Chromium driven over the DevTools protocol (its WebSocket, on loopback)."""

    def __init__(self, profile: Path, url: str):
        exe = chromium_exe()
        if exe is None:
            pytest.skip("chromium is not installed (Debian package `chromium`)")
        self.proc = subprocess.Popen([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < end:
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        self.ws = None
        self._id = 0

    async def connect(self):
        from websockets.asyncio.client import connect

        end = time.monotonic() + 20
        while True:
            pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=5).read())
            pages = [p for p in pages if p.get("type") == "page" and "/overlay" in p.get("url", "")]
            if pages or time.monotonic() > end:
                break
            await asyncio.sleep(0.2)
        self.ws = await connect(pages[0]["webSocketDebuggerUrl"], max_size=2**25)

    async def call(self, method: str, **params) -> dict:
        self._id += 1
        await self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(msg["error"])
                return msg["result"]

    async def evaluate(self, expr: str):
        return (await self.call("Runtime.evaluate", expression=expr, returnByValue=True))["result"].get("value")

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


READ = ("JSON.stringify({state: document.body.dataset.state, emotion: document.getElementById('emotion').textContent,"
        " valence: document.getElementById('valence').textContent, arousal: document.getElementById('arousal').textContent,"
        " bpm: document.getElementById('bpm').textContent, bar: document.getElementById('barbeat').textContent,"
        " next: document.getElementById('nextcut').textContent, held: document.getElementById('held').textContent,"
        " light: getComputedStyle(document.getElementById('light')).opacity})")


def test_chromium_shows_the_state_on_a_transparent_overlay(clip, tmp_path):  # noqa: F811
    port = free_port()

    async def scenario(engine, remote, clock):
        assert await wait_until(lambda: engine.state.boundaries >= 1, 30)
        browser = Browser(tmp_path / "profile", f"http://127.0.0.1:{port}/overlay")
        try:
            await browser.connect()
            await browser.call("Emulation.setDeviceMetricsOverride", width=760, height=180, deviceScaleFactor=1,
                               mobile=False)  # the OBS browser source's size
            seen = []

            async def live():
                got = await browser.evaluate(READ)  # None while the page is still loading
                seen.append(json.loads(got) if got else {"state": "loading", "bpm": ""})
                return seen[-1]["state"] == "live" and seen[-1]["bpm"] not in ("–", "")
            end = time.monotonic() + 20
            while not await live() and time.monotonic() < end:
                await asyncio.sleep(0.2)
            first = seen[-1]
            await engine.apply(SetMood(valence=0.6, arousal=-0.3))
            end = time.monotonic() + 5
            # the held mood's mark, not its valence alone: the picture itself may read +0.60 (it did once in CI)
            while not (await live() and seen[-1]["held"] == "(held)") and time.monotonic() < end:
                await asyncio.sleep(0.1)
            lights = []
            for _ in range(12):  # the beat light pulses between states
                lights.append(float(json.loads(await browser.evaluate(READ))["light"]))
                await asyncio.sleep(0.07)
            await browser.call("Emulation.setDefaultBackgroundColorOverride", color={"r": 0, "g": 0, "b": 0, "a": 0})
            shot = base64.b64decode((await browser.call("Page.captureScreenshot", format="png"))["data"])
            latest = engine.control.hub.latest
            return first, seen[-1], lights, shot, latest
        finally:
            browser.close()

    run = run_engine(clip, ["none"], scenario, overrides={"control.overlay": f"127.0.0.1:{port}"})
    first, held, lights, shot, latest = run.result
    path = tmp_path / "overlay.png"
    path.write_bytes(shot)
    print(f"overlay screenshot: {path}")
    from PIL import Image

    img = Image.open(io.BytesIO(shot)).convert("RGBA")
    backdrop = Image.linear_gradient("L").resize(img.size).convert("RGBA")  # as over a video, to look at
    Image.alpha_composite(backdrop, img).save(tmp_path / "overlay_over_picture.png")
    assert first["state"] == "live" and first["emotion"] not in ("…", "listening")
    assert 60 <= float(first["bpm"]) <= 160 and latest.valence == 0.6
    assert held["valence"] == "+0.60" and held["arousal"] == "-0.30" and held["held"] == "(held)"
    assert held["bar"] not in ("–", "") and held["next"] != ""
    assert max(lights) - min(lights) > 0.2, lights  # the light follows the beat
    assert img.size == (760, 180)
    assert img.getpixel((img.width - 2, 2))[3] == 0  # no background: the video shows through in OBS
    assert img.getpixel((30, img.height - 30))[3] > 0  # the panel is drawn


def test_listeners_beyond_loopback_need_a_token_and_the_overlay_checks_it():
    for key in ("control.osc_in", "control.overlay"):
        cfg = load_config(None, {key: "0.0.0.0:9999"})
        with pytest.raises(UserError, match="token"):
            Remote(cfg.control)
    cfg = load_config(None, {"hints.osc": "0.0.0.0:9999"})
    from cuecast.engine.hints import hint_sources

    with pytest.raises(UserError, match="token"):
        hint_sources(cfg.hints, lambda: 0.0)

    from cuecast.streams.bridges.overlay import OverlayServer

    class NoEvents:
        def subscribe(self, maxsize=0):
            raise AssertionError("a refused request must not subscribe")

    async def main():
        server = await OverlayServer(NoEvents(), "127.0.0.1", 0, token="s3cret").start()
        try:
            loop = asyncio.get_running_loop()

            def status(q):
                try:
                    return urllib.request.urlopen(f"http://127.0.0.1:{server.port}/overlay{q}", timeout=5).status
                except urllib.error.HTTPError as e:
                    return e.code
            return [await loop.run_in_executor(None, status, q) for q in ("", "?token=wrong", "?token=s3cret")]
        finally:
            await server.close()

    assert asyncio.run(main()) == [403, 403, 200]
