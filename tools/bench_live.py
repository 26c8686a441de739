"""Live timing benchmark: the real-time sender against deadlines, MIDI clock jitter at a JACK receiver next to
an ideal busy-waiting sender, and (lookahead 0) the time from a cut frame's arrival to the boundary chord.

    python tools/bench_live.py ../shared/media [--timing | --cuts] [--json]   (stderr: one line per cut)

Everything runs against a private JACK server (dummy driver, 32 frames at 48 kHz) started here, with and
without real-time scheduling for the server (the ideal sender busy-waits at normal priority). The load is
the engine's own analysis (cut detector + emotion estimator) on a real clip, in two processes, so both
cores are busy. Our sender and the ideal one take turns under the same load and are measured the same
way (receiver-side timestamps), so the comparison holds even though absolute numbers drift on a shared box.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from jack_server import JackReceiver, JackServer  # noqa: E402

from cuecast.engine.scheduler import RealtimeScheduler  # noqa: E402
from cuecast.midi import PPQN  # noqa: E402
from cuecast.types import Note  # noqa: E402

BPM = 120.0
LOAD_CLIP = "testvideo.mp4"
CUT_CLIPS = ("issue-195-aspect-ratio.mp4", "goldeneye-vfr-drop3.mp4", "issue-134-rotate.mp4")

LOAD_SCRIPT = r"""
import os, sys, time
from cuecast.engine.config import load_config
from cuecast.engine.stages import build_stages, set_torch_threads
from cuecast.streams.video import FileDecoder
cfg = load_config(None, {"conductor.lookahead_s": 3.0})
set_torch_threads(cfg.runtime)
st = build_stages(cfg)
parent, end = os.getppid(), time.monotonic() + float(sys.argv[2])
# the analysis the engine does per frame, as fast as it goes; bounded in time, and gone with its parent
while time.monotonic() < end and os.getppid() == parent:
    for item in FileDecoder(sys.argv[1], cfg.source.analysis_width, audio=False):
        st.detector.process_frame(item)
        st.emotion.process_frame(item)
        if os.getppid() != parent:
            break
"""
LOAD_LIMIT_S = 900

IDEAL_SCRIPT = r"""
import os, sys, time, rtmidi
port, t0, n, period, fifo = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "1"
if fifo:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(40))
    except OSError:
        pass
m = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "ideal")
m.open_port(m.get_ports().index(port))
late = []
for k in range(n):
    d = t0 + k * period
    while time.monotonic() < d:  # nothing but busy-waiting: the best a sender can do
        pass
    late.append(time.monotonic() - d)
    m.send_message([0xF8])
time.sleep(0.05)
m.close_port()
print(max(late))
"""


def _pct(xs, qs=(50, 95, 99)) -> dict:
    xs = np.asarray(xs, dtype=float)
    if xs.size == 0:
        return {f"p{q}": float("nan") for q in qs}
    out = {f"p{q}": float(np.percentile(xs, q)) for q in qs}
    out["max"] = float(xs.max())
    out["n"] = int(xs.size)
    return out


def clock_jitter_ms(times: list[float], expected: int) -> dict:
    """Receive-time deviation of each tick from the ideal tick grid (ms, absolute; grid offset = median).

    With every tick received, tick i is grid point i. When JACK dropped some (a missed cycle), each tick
    is placed by the time since the one before instead; a sender that stalls and then catches up in a burst
    looks like a loss to that rule, so rows with lost ticks are less exact (the table says how many).
    """
    period = 60.0 / BPM / PPQN
    t = np.asarray(times)
    if len(t) >= expected:
        k = np.arange(len(t))
    else:
        k = np.concatenate([[0], np.cumsum(np.maximum(1, np.round(np.diff(t) / period)))])
    res = t - k * period
    res -= np.median(res)
    out = _pct(np.abs(res) * 1000)
    out["lost"] = max(0, expected - len(times))
    return out


def start_load(media: Path, n: int = 2) -> list[subprocess.Popen]:
    clip = media / LOAD_CLIP
    return [subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, str(clip), str(LOAD_LIMIT_S)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for _ in range(n)]


def stop(procs) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()


def ours(rx: JackReceiver, seconds: float) -> tuple[dict, dict, list[float]]:
    """Our scheduler: clock at BPM plus a dense four-part note stream. Returns (notes, clock, tick times)."""
    t0 = [0.0]
    chans = {"drums": (10, 0), "bass": (2, 33), "chords": (3, 0), "melody": (4, 73)}
    s = RealtimeScheduler([f"jack:{rx.full_name}"], lambda t: t0[0] + t, chans)
    n0 = len(rx.messages)
    t0[0] = time.monotonic() + 0.5
    s.tempo(0.0, BPM, 0.0)
    step = 60.0 / BPM / 2  # eighth notes
    notes = []
    for i in range(int(seconds / step)):
        t = i * step
        notes += [Note(t, t + 0.05, 36 + (i % 2) * 2, 100, "drums"), Note(t, t + step * 0.9, 40 + i % 5, 90, "bass"),
                  Note(t, t + step * 1.8, 60 + i % 7, 70, "melody")]
        if i % 4 == 0:
            notes += [Note(t, t + step * 3.5, p, 70, "chords") for p in (60, 64, 67)]
    # handed over in slices ahead of time, as the engine does (up to ~0.5 s ahead)
    end = time.monotonic() + 0.5 + seconds
    sent = 0
    while time.monotonic() < end:
        horizon = time.monotonic() - t0[0] + 0.5
        batch = [n for n in notes[sent:] if n.start < horizon]
        if batch:
            s.notes(batch)
            sent += len(batch)
        time.sleep(0.05)
    s.cut_at(seconds)
    s.close()
    time.sleep(0.05)
    rx.drain()
    ticks = [t for t, m in rx.messages[n0:] if m[0] == 0xF8]
    rep = s.report
    return _pct(np.array(rep.lateness) * 1000), _pct(np.array(rep.clock_lateness) * 1000), ticks[2:]


def ideal(rx: JackReceiver, seconds: float, fifo: bool) -> list[float]:
    n0 = len(rx.messages)
    period = 60.0 / BPM / PPQN
    n = int(seconds / period)
    t0 = time.monotonic() + 1.0
    p = subprocess.run([sys.executable, "-c", IDEAL_SCRIPT, rx.full_name, repr(t0), str(n), repr(period),
                        "1" if fifo else "0"], capture_output=True, text=True, timeout=seconds + 30)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-500:])
    time.sleep(0.05)
    rx.drain()
    return [t for t, m in rx.messages[n0:] if m[0] == 0xF8][2:]


class _CutWatch:
    """Passes everything to the scheduler and notes, with wall times, every re-plan (cut_at) and every
    chord onset handed over (3+ pitch classes starting together), so each cut can be traced."""

    def __init__(self, inner):
        self.inner, self.cuts, self.chords = inner, [], []

    def tempo(self, t, bpm, beat):
        self.inner.tempo(t, bpm, beat)

    def notes(self, notes):
        from cuecast.models.music.metrics import chord_onsets

        wall = time.monotonic()
        self.chords += [(wall, t) for t in chord_onsets(notes)]
        self.inner.notes(notes)

    def cut_at(self, t):
        self.cuts.append((time.monotonic(), t))
        self.inner.cut_at(t)

    def close(self):
        self.inner.close()


def trace_cut(b, arrivals: dict, watch: _CutWatch, sent_log, wall_of) -> dict:
    """What happened to one detected hard cut: when its frame and the deciding frame arrived, the re-plan
    it caused (if any), the chord the music had planned near it, and when the first chord went out after
    its frame arrived. Times in ms from the cut frame's arrival."""
    arrival = arrivals.get(round(b.t, 4))
    decided = arrivals.get(round(b.decided_at, 4)) if b.decided_at is not None else None
    if arrival is None:
        return {"t": b.t, "missing_frame": True}
    ms = lambda w: None if w is None else round((w - arrival) * 1000, 1)  # noqa: E731
    # a re-plan this cut caused: at or after the frame arrived, before the next frame could matter, from the cut on
    plan = next((w for w, t in watch.cuts if arrival <= w <= arrival + 0.5 and b.t - 0.05 <= t <= b.t + 0.5), None)
    # a chord onset the music had planned within 0.6 s of the cut's media time before the frame arrived
    planned = [round(t - b.t, 3) for w, t in watch.chords if w < arrival and abs(t - b.t) < 0.6]
    # the first chord handed to the sender after the frame arrived (when, and for which media time)
    handed = next(((w, t) for w, t in watch.chords if w >= arrival and t >= b.t - PREDICTED_S), None)
    chord = _first_chord_after(sent_log, arrival - PREDICTED_S)
    return {"t": round(b.t, 3), "decided_frame": ms(decided), "replan": ms(plan), "planned_near": planned,
            "handed": None if handed is None else (ms(handed[0]), ms(wall_of(handed[1]))),
            "chord": ms(chord), "play_time": ms(wall_of(b.t))}


PREDICTED_S = 0.1  # a chord sent up to this long before the cut frame arrived was planned for it (a forecast)
LATE_S = 1.0  # no chord this long after the cut frame's arrival: the cut got none


class LiveRun(NamedTuple):  # not a dataclass: tools/bench.py loads this file without registering the module
    """One clip played live through the engine at lookahead 0 into JACK, with what it takes to trace it."""

    timeline: object
    log: list  # (wall, message) of everything sent
    watch: "_CutWatch"
    arrivals: dict  # frame media time -> wall time it left the source
    wall_of: object  # the run's media time -> wall time
    dropped: int


def play_live(path: Path, rx: JackReceiver, overrides: dict) -> LiveRun:
    from cuecast.engine.clock import RealtimeClock
    from cuecast.engine.config import load_config
    from cuecast.engine.pipeline import Engine
    from cuecast.engine.stages import build_stages, set_torch_threads
    from cuecast.streams.video import FileSource

    cfg = load_config("vj", overrides)
    set_torch_threads(cfg.runtime)
    stages = build_stages(cfg)
    clock = RealtimeClock(0.0)
    sched = RealtimeScheduler([f"jack:{rx.full_name}"], clock.wall_of, cfg.instrument_map(), record=True)
    watch = _CutWatch(sched)
    arrivals: dict[float, float] = {}

    class Stamped(FileSource):  # notes when each frame arrived (the source stamps it as it decodes)
        async def recv(self):
            item = await super().recv()
            if hasattr(item, "index"):
                arrivals[round(item.t, 4)] = item.arrived
            return item

    source = Stamped(path, cfg.source.analysis_width, audio=cfg.source.audio, realtime=True)
    engine = Engine(cfg, source, watch, clock, stages)
    started = time.monotonic()
    tl = asyncio.run(engine.run())
    _say(f"  {path.name}: {len(tl.boundaries)} boundaries, {engine.state.dropped} frames dropped, "
         f"{time.monotonic() - started:.0f} s")
    return LiveRun(tl, sched.report.log, watch, arrivals, clock.wall_of, engine.state.dropped)


def cut_to_chord(media: Path, rx: JackReceiver, overrides: dict) -> dict:
    """lookahead 0: wall time from the arrival of a cut's frame to the send of the first chord after it.

    Cuts a forecast already put a chord on (sent up to PREDICTED_S before the frame arrived) are counted
    apart; the latency is over the others, the cuts nothing predicted. Also split: arrival -> re-plan
    (queue wait + analysis + detector decision) and re-plan -> chord sent. One line per cut to stderr.
    """
    traces: list[dict] = []
    dropped = 0
    for name in CUT_CLIPS:
        path = media / name
        if not path.exists():
            continue
        run = play_live(path, rx, overrides)
        dropped += run.dropped
        chords = sent_chords(run.log)
        for b in run.timeline.boundaries:
            if b.kind == "hard" and b.t >= 0.5:
                tr = {"clip": name, **trace_cut(b, run.arrivals, run.watch, chords, run.wall_of)}
                traces.append(tr)
                _say(f"    {tr}")  # one line per cut in the log: where a late chord lost its time
    return summarise(traces, dropped)


# ---- lookahead 0 on rhythmically cut video: how many cuts get a chord -----------------------------------

RHYTHM_EDITS = (("steady", 11), ("accelerating", 12), ("beat", 13), ("steady", 14), ("beat", 15))  # (rhythm, seed)
EDIT_S = 24.0
EDIT_FPS = 25.0
EDIT_SIZE = (320, 180)


def make_rhythmic_edits(media: Path, out: Path) -> list[tuple[Path, list[float], str]]:
    """Real footage re-cut with tools/make_edits.py's rhythms (steady, accelerating, on a beat grid with its
    beat track as audio). Returns (video, the cut times made, rhythm) per edit."""
    sys.path.insert(0, str(HERE))
    import make_edits as me  # noqa: PLC0415

    sources, pool = [], []
    for p in me.find_videos([media]):
        imgs, times = me.load_source(p, EDIT_SIZE)
        if len(imgs) >= 10:
            pool += [(len(sources), shot) for shot in me.source_shots(imgs, times)]
            sources.append((imgs, times))
    edits = []
    for kind, seed in RHYTHM_EDITS:
        rng = np.random.default_rng(seed)
        cuts, info = me.rhythm_cuts(kind, EDIT_S, rng)
        cuts = [float(np.ceil(c * EDIT_FPS - 1e-6) / EDIT_FPS) for c in cuts]  # a cut lands on a frame
        frames = me.compose(sources, pool, cuts, EDIT_S, EDIT_FPS, rng)
        audio = me.beat_track(EDIT_S, info["bpm"], cuts[0], rng) if kind == "beat" else None
        path = out / f"{kind}_{seed}.mp4"
        me.write_video(path, frames, audio, EDIT_FPS)
        edits.append((path, cuts, kind))
    return edits


def chords_on_cuts(edits, rx: JackReceiver, overrides: dict) -> dict:
    """Share of the made cuts with a chord onset sent within ±100 ms of the cut (metrics.cut_alignment on
    the notes actually sent, in media time), how many of those a forecast put there before the cut's frame
    arrived, the share of all chord onsets that are on a cut, and the chord rate at random moments (the
    baseline of what 'on the cut' means)."""
    from cuecast.models.music.metrics import chord_onsets, cut_alignment

    hits = predicted = n = chords = chords_on_cut = 0
    latency: list[float] = []  # ms from the frame's arrival to the first chord sent, cuts nothing predicted
    random_rates = []
    for path, cuts, _ in edits:
        run = play_live(path, rx, overrides)
        offset = run.wall_of(0.0)
        notes = [Note(a - offset, b - offset, n_.pitch, 64, "chords") for a, b, n_ in _sent_notes(run.log)]
        cuts = [c for c in cuts if c >= 0.5]
        stats = cut_alignment(notes, cuts, EDIT_S)
        hits += round(stats["hit_rate"] * len(cuts))
        onsets = [t for t in chord_onsets(notes) if 0.5 <= t <= EDIT_S]
        chords += len(onsets)
        chords_on_cut += sum(any(abs(t - c) <= 0.1 for c in cuts) for t in onsets)
        random_rates.append(stats["random_rate"])
        n += len(cuts)
        sent = sent_chords(run.log)
        for c in cuts:
            arrival = run.arrivals.get(round(c, 4))
            if arrival is None:
                continue
            if any(w < arrival and abs(t - c) <= 0.1 for w, t in run.watch.chords):
                predicted += 1
                continue
            chord = _first_chord_after(sent, arrival - PREDICTED_S)  # nothing predicted it: how fast did it come
            if chord is not None and chord - arrival <= LATE_S:
                latency.append(max(0.0, chord - arrival) * 1000)
    return {"cuts": n, "hit_rate": hits / max(1, n), "predicted_rate": predicted / max(1, n),
            "chords": chords, "chords_on_cuts": chords_on_cut / max(1, chords), "latency_ms": latency,
            "random_rate": float(np.mean(random_rates)) if random_rates else float("nan")}


def summarise(traces: list[dict], dropped: int) -> dict:
    seen = [t for t in traces if not t.get("missing_frame")]
    predicted = [t for t in seen if t["chord"] is not None and t["chord"] <= 0]
    unplanned = [t for t in seen if t not in predicted]
    lat = [t["chord"] for t in unplanned if t["chord"] is not None and t["chord"] <= LATE_S * 1000]
    to_plan = [t["replan"] for t in unplanned if t["replan"] is not None]
    plan_to_send = [t["chord"] - t["replan"] for t in unplanned if t["replan"] is not None and t["chord"] is not None]
    out = _pct(lat, (50, 95))
    out["missed"] = len(unplanned) - len(lat)
    out["predicted"] = len(predicted)
    out["dropped_frames"] = dropped
    out["to_plan_p50"] = float(np.median(to_plan)) if to_plan else float("nan")
    out["plan_to_send_p50"] = float(np.median(plan_to_send)) if plan_to_send else float("nan")
    out["traces"] = traces
    return out


def _sent_notes(log, drum_channel: int = 9) -> list[tuple[float, float, "Note"]]:
    """(on wall time, off wall time, note) of every pitched note actually sent, rebuilt from note-on/off
    pairs in the send log (drums left out)."""
    sounding: dict[tuple[int, int], float] = {}
    out = []
    for w, m in sorted(log, key=lambda e: e[0]):
        kind, ch = m[0] & 0xF0, m[0] & 0x0F
        if kind not in (0x80, 0x90) or ch == drum_channel:
            continue
        key = (ch, m[1])
        if kind == 0x90 and m[2] > 0:
            sounding[key] = w
        elif key in sounding:
            on = sounding.pop(key)
            out.append((on, w, Note(on, w, m[1], 64, "chords")))
    out += [(w, math.inf, Note(w, math.inf, k[1], 64, "chords")) for k, w in sounding.items()]
    return out


def sent_chords(log) -> list[float]:
    """Wall times of the chord onsets actually sent, by the metrics' chord rule (3+ pitch classes within
    30 ms, each held >= 0.4 s)."""
    from cuecast.models.music.metrics import chord_onsets

    return chord_onsets([n for _, _, n in _sent_notes(log)])


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _first_chord_after(chords: list[float], t: float) -> float | None:
    """The first chord onset (wall time) at or after t."""
    return next((w for w in chords if w >= t), None)


def timing_rows(media: Path, realtime: bool) -> list[dict]:
    """Our sender and the ideal one on one JACK server: once idle (the floor), then taking turns under load."""
    mode = "realtime" if realtime else "no-realtime"
    expected = int(6.0 / (60.0 / BPM / PPQN)) - 2
    rows: list[dict] = []
    server = JackServer(period=32, realtime=realtime).start()
    try:
        rx = JackReceiver(client="bench-rx")
        try:
            _, _, idle_ours = ours(rx, 6.0)
            idle_ideal = ideal(rx, 6.0, fifo=False)
            rows.append({"what": f"[{mode}] idle: JACK receive jitter, cuecast sender", **clock_jitter_ms(idle_ours, expected)})
            rows.append({"what": f"[{mode}] idle: JACK receive jitter, ideal busy-wait sender", **clock_jitter_ms(idle_ideal, expected)})
            load = start_load(media)
            time.sleep(4.0)  # let the analysis warm up (model load) so the load is on
            try:
                notes, clock, ours_ticks, ideal_ticks = [], [], [], []
                for _ in range(2):  # take turns, so drift in the machine's load hits both alike
                    n, c, t = ours(rx, 6.0)
                    notes.append(n)
                    clock.append(c)
                    ours_ticks.append(t)
                    ideal_ticks.append(ideal(rx, 6.0, fifo=False))
            finally:
                stop(load)
        finally:
            rx.close()
    finally:
        server.stop()
    for i in range(2):
        rows.append({"what": f"[{mode}] load: sender, note messages vs deadline (turn {i + 1})", **notes[i]})
        rows.append({"what": f"[{mode}] load: sender, clock ticks vs deadline (turn {i + 1})", **clock[i]})
    jo = [clock_jitter_ms(t, expected) for t in ours_ticks]
    ji = [clock_jitter_ms(t, expected) for t in ideal_ticks]
    for i in range(2):
        rows.append({"what": f"[{mode}] load: JACK receive jitter, cuecast sender (turn {i + 1})", **jo[i]})
        rows.append({"what": f"[{mode}] load: JACK receive jitter, ideal busy-wait sender (turn {i + 1})", **ji[i]})
    rows.append({"what": f"[{mode}] load: receive jitter, cuecast minus ideal (mean of turns)",
                 "p95": float(np.mean([a["p95"] - b["p95"] for a, b in zip(jo, ji)])),
                 "p99": float(np.mean([a["p99"] - b["p99"] for a, b in zip(jo, ji)]))})
    return rows


def run(media_dir: str, only: str = "") -> list[dict]:
    from jack_server import can_realtime

    media = Path(media_dir)
    rows: list[dict] = []
    for realtime in ((True, False) if can_realtime() else (False,)):
        if only == "cuts":
            break
        _say(f"timing, JACK {'realtime' if realtime else 'no-realtime'} ...")
        rows += timing_rows(media, realtime)
    if only == "timing":
        return rows
    server = JackServer(period=32).start()
    try:
        rx = JackReceiver(client="bench-cuts")
        try:
            # with the forecaster some cuts are planned for ahead; without it every cut is a surprise
            configs = (("vj preset", {}), ("vj, no forecast", {"conductor.use_forecast": False}))
            pooled: list[dict] = []
            for label, over in configs:
                _say(f"cut -> chord, {label} ...")
                r = cut_to_chord(media, rx, over)
                pooled.append(r)
                rows.append({"what": f"cut frame arrival -> first chord sent, lookahead 0, cuts nothing predicted ({label}; "
                                     f"{r['predicted']} more cuts had a forecast chord; median {r['to_plan_p50']:.0f} ms to "
                                     f"the re-plan, {r['plan_to_send_p50']:.1f} ms from re-plan to send; "
                                     f"{r['dropped_frames']} frames dropped)", **r})
            pooled_ms: list[float] = []
            both = summarise([t for r in pooled for t in r["traces"]], sum(r["dropped_frames"] for r in pooled))
            rows.append({"what": "cut frame arrival -> first chord sent, lookahead 0, cuts nothing predicted (both runs above)",
                         **both})
            with tempfile.TemporaryDirectory() as tmp:
                _say("rhythmic edits ...")
                edits = make_rhythmic_edits(media, Path(tmp))
                for label, over in configs:
                    _say(f"chords on cuts, {label} ...")
                    r = chords_on_cuts(edits, rx, over)
                    rows.append({"rhythm": label, "edits": ", ".join(k for _, _, k in edits), **r})
                    lat = r["latency_ms"]
                    rows.append({"what": f"cut frame arrival -> first chord sent, lookahead 0, cuts nothing predicted, "
                                         f"rhythmic edits ({label})", **_pct(lat, (50, 95))})
                    pooled_ms.extend(lat)
            clips_ms = [t["chord"] for r in pooled for t in r["traces"]
                        if t.get("chord") is not None and 0 < t["chord"] <= LATE_S * 1000]
            rows.append({"what": "cut frame arrival -> first chord sent, lookahead 0, cuts nothing predicted: "
                                 "all of the above (clips and edits)", **_pct(clips_ms + pooled_ms, (50, 95))})
        finally:
            rx.close()
    finally:
        server.stop()
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["### Live timing (ms)", "", "| measure | p50 | p95 | p99 | max | n |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "rhythm" in r:
            continue
        cell = lambda k: "" if k not in r or r[k] != r[k] else (f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]))  # noqa: E731
        extra = f" (missed {r['missed']})" if r.get("missed") else ""
        extra += f" ({r['lost']} ticks lost in JACK)" if r.get("lost") else ""
        lines.append(f"| {r['what']}{extra} | {cell('p50')} | {cell('p95')} | {cell('p99')} | {cell('max')} | {cell('n')} |")
    rhythm = [r for r in rows if "rhythm" in r]
    if rhythm:
        lines += ["", "### Lookahead 0 on rhythmically cut video: chords on cuts", "",
                  f"Real footage re-cut by tools/make_edits.py's rhythms ({rhythm[0]['edits']}; {EDIT_S:.0f} s each), "
                  "played live at lookahead 0 into JACK. A cut counts when a chord onset (3+ pitch classes within "
                  "30 ms, each held >= 0.4 s) is sent within ±100 ms of it; *forecast* = that chord was handed to the "
                  "sender before the cut's frame arrived (planned from the cut forecaster); the rest were re-planned "
                  "on the cut's own frame. *Random* = the same measure at random moments >= 0.5 s from any cut; "
                  "*chords on a cut* = the share of all chord onsets sent that are within ±100 ms of a cut.", "",
                  "| run | cuts | cuts with a chord (±100 ms) | ... by forecast (share of all cuts) | chord at random | chords | chords on a cut |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in rhythm:
            lines.append(f"| {r['rhythm']} | {r['cuts']} | {r['hit_rate']:.0%} | {r['predicted_rate']:.0%} | "
                         f"{r['random_rate']:.0%} | {r['chords']} | {r['chords_on_cuts']:.0%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    media = args[0] if args else str(HERE.parent.parent / "shared" / "media")
    only = "timing" if "--timing" in sys.argv else "cuts" if "--cuts" in sys.argv else ""
    result = run(media, only)
    print(markdown(result))
    if "--json" in sys.argv:
        print(json.dumps(result, indent=1))
