"""Ingest benchmark: a WebRTC source next to a file source, and a flood of frames faster than the analysis.

    python tools/bench_ingest.py ../shared/media [--json]        (runs itself inside a network namespace)

1. cut -> chord at lookahead 0 (vj preset), the same footage two ways: played from a file at real-time pace,
   and sent by headless Chromium over WebRTC (its fake camera plays a Y4M made from the footage). Measured
   as tools/bench_live.py does: from the arrival of a detected cut's frame to the first chord sent to a JACK
   port (cuts a forecast had already put a chord on are counted apart).
2. flood: Chromium's fake camera at 1280x720, 60 fps, into the engine; how old each frame is when the
   analysis takes it (arrival -> analysed), and how many frames the live queue dropped to keep that bounded.

Browser and engine run inside a network namespace with only `lo` up (ICE can offer nothing else); the JACK
server too (it talks over shared memory and unix sockets).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

CLIPS = ("goldeneye-vfr-drop3.mp4", "issue-195-aspect-ratio.mp4", "issue-134-rotate.mp4")
SIZE, FPS, SECONDS = (480, 270), 25, 45.0
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--use-fake-ui-for-media-stream", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-gpu", "--mute-audio",
                  "--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection",
                  "--disable-features=WebRtcHideLocalIpsWithMdns"]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_y4m(media: Path, out: Path) -> Path:
    """The cut clips one after another, scaled to SIZE at FPS, as a Y4M (what Chromium's fake camera plays)."""
    import av

    dst = av.open(str(out), "w", format="yuv4mpegpipe")
    vs = dst.add_stream("wrapped_avframe", rate=FPS)
    vs.width, vs.height, vs.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
    n = 0
    for name in CLIPS:
        with av.open(str(media / name)) as src:
            for frame in src.decode(video=0):
                img = frame.reformat(width=SIZE[0], height=SIZE[1], format="yuv420p")
                img.pts, img.time_base = n, Fraction(1, FPS)
                for packet in vs.encode(img):
                    dst.mux(packet)
                n += 1
                if n >= SECONDS * FPS * (CLIPS.index(name) + 1) / len(CLIPS):
                    break
    for packet in vs.encode():
        dst.mux(packet)
    dst.close()
    return out


class Stamped:
    """A Source passed through, noting each frame's arrival (Frame.arrived) and its age when analysed."""

    def __init__(self, inner):
        self.inner, self.info = inner, inner.info
        self.arrivals: dict[float, float] = {}

    @property
    def dropped(self) -> int:
        return self.inner.dropped

    async def recv(self):
        item = await self.inner.recv()
        if hasattr(item, "index"):
            self.arrivals[round(item.t, 4)] = item.arrived or time.monotonic()
        return item

    async def close(self):
        await self.inner.close()

    async def __aiter__(self):
        from cuecast.types import EndOfStream

        while True:
            try:
                yield await self.recv()
            except EndOfStream:
                return


def play(source, rx, seconds: float, overrides: dict):
    """Run the engine on `source` at lookahead 0 into JACK for `seconds`; (timeline, sent log, cut watch,
    arrivals, wall_of, dropped, frame ages ms)."""
    from bench_live import _CutWatch

    from cuecast.engine.clock import RealtimeClock
    from cuecast.engine.config import load_config
    from cuecast.engine.pipeline import Engine
    from cuecast.engine.scheduler import RealtimeScheduler
    from cuecast.engine.stages import build_stages, set_torch_threads

    cfg = load_config("vj", overrides)
    set_torch_threads(cfg.runtime)
    clock = RealtimeClock(0.0)
    sched = RealtimeScheduler([f"jack:{rx.full_name}"], clock.wall_of, cfg.instrument_map(), record=True)
    watch = _CutWatch(sched)
    stamped = Stamped(source)
    engine = Engine(cfg, stamped, watch, clock, build_stages(cfg))
    ages: list[float] = []

    def analysed(t: float) -> None:
        arrived = stamped.arrivals.get(round(t, 4))
        if arrived is not None:
            ages.append((time.monotonic() - arrived) * 1000)

    async def run():
        asyncio.get_running_loop().call_later(seconds, engine.stop)
        return await engine.run(progress=analysed)

    tl = asyncio.run(run())
    return tl, sched.report.log, watch, stamped.arrivals, clock.wall_of, engine.state.dropped, engine.state.frames, ages


def cut_rows(label: str, result, chords) -> tuple[dict, list[dict]]:
    from bench_live import summarise, trace_cut

    tl, log, watch, arrivals, wall_of, dropped, frames, ages = result
    traces = [trace_cut(b, arrivals, watch, chords, wall_of) for b in tl.boundaries if b.kind == "hard" and b.t >= 0.5]
    r = summarise(traces, dropped)
    r.update({"what": label, "frames": frames, "age_p50": _p(ages, 50), "age_p95": _p(ages, 95),
              "age_max": max(ages) if ages else float("nan")})
    return r, traces


def _p(xs, q) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


class Browser:
    def __init__(self, url: str, profile: Path, extra: list[str]):
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        self.proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, *extra, f"--user-data-dir={profile}", url],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(10)


def webrtc_run(rx, port: int, seconds: float, profile: Path, fake: list[str], query: str = ""):
    """WebRTCSource on 127.0.0.1:port, one Chromium sending to it; the engine runs until `seconds` after the
    first frame would be reasonable to expect (browser start-up is not part of the measure)."""
    from cuecast.streams.webrtc import WebRTCSource

    from cuecast.engine.config import load_config

    cfg = load_config("vj", {}).source  # the live queue as the vj preset has it (2 frames)
    source = WebRTCSource(f"webrtc:127.0.0.1:{port}", cfg.analysis_width, queue_frames=cfg.queue_frames, announce=_say)
    browser = Browser(f"http://127.0.0.1:{port}/?autostart=1{query}", profile, fake)
    try:
        return play(source, rx, seconds, {})
    finally:
        browser.close()


class _Port:
    """The JACK receiver's port, made outside the namespace (see in_namespace)."""

    def __init__(self, name: str):
        self.full_name = name


def run(media: Path) -> list[dict]:
    from bench_live import sent_chords

    from cuecast.streams.video import FileSource

    rows = []
    rx = _Port(os.environ["CUECAST_BENCH_PORT"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        y4m = make_y4m(media, tmp / "cuts.y4m")
        _say(f"file source ({y4m.name}, {SECONDS:.0f} s) ...")
        from cuecast.engine.config import load_config

        cfg = load_config("vj", {}).source
        result = play(FileSource(y4m, cfg.analysis_width, realtime=True, queue_frames=cfg.queue_frames), rx,
                      SECONDS + 2, {})
        row, _ = cut_rows("file source (real-time pace)", result, sent_chords(result[1]))
        rows.append(row)
        _say("webrtc source (Chromium's fake camera playing the same footage) ...")
        result = webrtc_run(rx, 8097, SECONDS + 10, tmp / "p1", [f"--use-file-for-fake-video-capture={y4m}",
                                                                 "--use-fake-device-for-media-stream"])
        row, _ = cut_rows("WebRTC source (Chromium, same footage)", result, sent_chords(result[1]))
        rows.append(row)
        _say("flood: webrtc 1280x720 at 60 fps ...")
        result = webrtc_run(rx, 8098, 25.0, tmp / "p2", ["--use-fake-device-for-media-stream=fps=60"],
                            "&width=1280&height=720&fps=60")
        row, _ = cut_rows("flood: WebRTC 1280x720, 60 fps fake camera", result, sent_chords(result[1]))
        rows.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for r in rows:
        r.pop("traces", None)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["### Ingest: WebRTC next to a file, and a flood (ms)", "",
             "| source | cut -> chord p50 | p95 | cuts (forecast) | frames analysed | dropped | frame age at analysis p50 | p95 | max |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    f = lambda x: "" if x != x else f"{x:.0f}"  # noqa: E731
    for r in rows:
        lines.append(f"| {r['what']} | {f(r.get('p50', float('nan')))} | {f(r.get('p95', float('nan')))} | "
                     f"{r.get('n', 0)} ({r['predicted']}) | {r['frames']} | {r['dropped_frames']} | "
                     f"{f(r['age_p50'])} | {f(r['age_p95'])} | {f(r['age_max'])} |")
    return "\n".join(lines) + "\n"


def in_namespace(argv: list[str]) -> int:
    """Run this script again inside a fresh network namespace with only loopback (a second loopback address
    gives aiortc's ICE a candidate); the JACK server and its receiver stay outside, as in the tests."""
    from jack_server import JackReceiver, JackServer

    name = f"cuecast-bench-{os.getpid()}"
    server = JackServer(period=32).start()
    rx = JackReceiver(client="bench-ingest")
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", "127.0.0.2/32", "dev", "lo"], check=True)
        env = {**os.environ, **server.env(), "CUECAST_BENCH_NETNS": name, "CUECAST_BENCH_PORT": rx.full_name}
        return subprocess.run(["ip", "netns", "exec", name, sys.executable, *argv], env=env).returncode
    finally:
        subprocess.run(["ip", "netns", "del", name])
        rx.close()
        server.stop()


if __name__ == "__main__":
    if not os.environ.get("CUECAST_BENCH_NETNS"):
        sys.exit(in_namespace(sys.argv))
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    media = Path(args[0] if args else HERE.parent.parent / "shared" / "media")
    result = run(media)
    print(markdown(result))
    if "--json" in sys.argv:
        print(json.dumps(result, indent=1))
