"""A generator slower than real time: live play skips ahead to the playhead instead of making music for the past.

Before, a 3.6 s clip played for half a minute (every step generated, then sent late). The engine, the real
arranger, the sender process and a JACK port are real; the only stand-in is the slowness.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from jack_server import JackReceiver, jack  # noqa: F401 - `jack` is a fixture

from cuecast.engine.config import load_config
from cuecast.engine.live import LivePlayer
from cuecast.engine.stages import build_stages
from cuecast.testmedia.video import make_test_video
from cuecast.types import Generator, StepPlan

CLIP_S = 3.6
LOOKAHEAD_S = 1.0
SLOWNESS = 6.0  # wall seconds per media second of music: a sixth of real time
BPM = (118.0, 122.0)  # a steady tempo: every step (one beat, ~0.5 s) takes ~3 s to make
STEP_WALL = 60.0 / BPM[0] * SLOWNESS


class Slow:
    """The real generator, made slower than real time (a test double for slowness only)."""

    def __init__(self, inner: Generator, slowness: float):
        self.inner, self.slowness, self.name = inner, slowness, inner.name
        self.made_s = 0.0

    def reset(self, seed: int) -> None:
        self.inner.reset(seed)

    def rewind(self, t: float) -> None:
        self.inner.rewind(t)

    def step(self, plan: StepPlan):
        time.sleep((plan.t1 - plan.t0) * self.slowness)
        self.made_s += plan.t1 - plan.t0
        return self.inner.step(plan)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("behind") / "clip.mp4"
    make_test_video(path, [(1.2, (230, 190, 120)), (1.2, (40, 50, 90)), (1.2, (220, 40, 40))], fps=25, size=(160, 90))
    return path


def test_slow_generator_skips_to_the_playhead_and_ends_on_time(clip, jack, monkeypatch):  # noqa: F811
    cfg = load_config(None, {"conductor.lookahead_s": LOOKAHEAD_S, "generator.backend": "arranger",
                             "conductor.tempo_min": BPM[0], "conductor.tempo_max": BPM[1]})
    slow: list[Slow] = []

    def slow_stages(c, **kw):
        stages = build_stages(c, **kw)
        slow.append(Slow(stages.generator, SLOWNESS))
        stages.generator = slow[0]
        return stages

    monkeypatch.setattr("cuecast.engine.live.build_stages", slow_stages)
    rx = JackReceiver(client=f"behind{time.monotonic_ns() % 10**9}")
    try:
        player = LivePlayer(cfg, f"file:{clip}", [f"jack:{rx.full_name}"], client_name="cuecast-behind")
        started = time.monotonic()
        result = asyncio.run(player.play())
        wall = time.monotonic() - started
        time.sleep(0.05)
        rx.drain()
        assert rx.note_ons() > 0
        assert rx.unmatched(strict=True) == set()  # every note-on got its note-off
    finally:
        rx.close()
    # Making all of it would take SLOWNESS x CLIP_S = 21.6 s of generating alone. Skipping, the run ends when the
    # clip has played (its length plus the lookahead), plus the step in progress and one last step before the end.
    st = result.state
    assert st.skips > 0 and st.skipped_s > CLIP_S / 3
    assert slow[0].made_s < CLIP_S * 2 / 3
    assert result.wall_s < CLIP_S + LOOKAHEAD_S + 2 * STEP_WALL + 3.0, result.summary()
    assert result.timeline.meta["skips"] == st.skips
    assert wall < 60



class SlowEmotion:
    """The real emotion estimator, reading a frame slower than the picture comes (a test double for slowness only)."""

    def __init__(self, inner, seconds: float):
        self.inner, self.seconds = inner, seconds
        self.read = 0

    def process_frame(self, frame):
        time.sleep(self.seconds)
        self.read += 1
        return self.inner.process_frame(frame)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_slow_emotion_reads_fewer_frames_instead_of_queueing_them(clip, monkeypatch):
    """Each frame waiting for the emotion thread holds its picture: at most EMOTION_BACKLOG wait, the rest are
    not read for emotion (before, all waited: an hour behind on a starved machine)."""
    monkeypatch.setattr("cuecast.engine.pipeline.EMOTION_BACKLOG", 6)
    cfg = load_config(None, {"conductor.lookahead_s": LOOKAHEAD_S, "generator.backend": "arranger"})
    slow: list[SlowEmotion] = []

    def slow_stages(c, **kw):
        stages = build_stages(c, **kw)
        slow.append(SlowEmotion(stages.emotion, 0.1))  # 10 frames a second, of 25
        stages.emotion = slow[0]
        return stages

    monkeypatch.setattr("cuecast.engine.live.build_stages", slow_stages)
    result = asyncio.run(LivePlayer(cfg, f"file:{clip}", ["none"], client_name="cuecast-slow-emotion").play())
    skipped = result.timeline.meta["emotion_frames_skipped"]
    assert slow[0].read + skipped == result.state.frames  # every frame read, or counted as not read
    assert slow[0].read < 0.7 * result.state.frames  # about 10 of every 25, plus the few that were waiting
    assert result.timeline.emotion or result.state.valence is not None  # the windows still came
