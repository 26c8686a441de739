"""The live input queue bounds the frames waiting, not the audio that comes with them."""

from __future__ import annotations

import asyncio

import numpy as np

from cuecast.engine.pipeline import LiveQueue
from cuecast.types import AudioChunk, Frame


def frame(t):
    return Frame(t=t, index=int(t * 25), image=np.zeros((4, 4, 3), np.uint8))


def chunk(t):
    return AudioChunk(t=t, samples=np.zeros(1024, np.float32), rate=48000)


def drain(q: LiveQueue) -> list:
    async def take():
        return [await q.get() for _ in range(q.items.qsize())]
    return asyncio.run(take())


def test_audio_with_the_frames_pushes_no_frame_out():
    q = LiveQueue(2)
    dropped = sum(q.offer(x) for x in (frame(0.0), chunk(0.0), chunk(0.021), frame(0.04), chunk(0.043), chunk(0.064)))
    assert dropped == 0
    assert [type(x).__name__ for x in drain(q)] == ["Frame", "AudioChunk", "AudioChunk", "Frame", "AudioChunk", "AudioChunk"]
    assert q.frames == 0


def test_one_frame_too_many_drops_the_oldest_frame_and_keeps_the_audio():
    q = LiveQueue(2)
    for x in (chunk(-0.021), frame(0.0), chunk(0.0), frame(0.04), chunk(0.043)):
        q.offer(x)
    assert q.offer(frame(0.08)) == 1
    left = [(type(x).__name__, x.t) for x in drain(q)]
    # the oldest frame goes with what waited before it; the audio after it still reaches the analysis
    assert left == [("AudioChunk", 0.0), ("Frame", 0.04), ("AudioChunk", 0.043), ("Frame", 0.08)]
