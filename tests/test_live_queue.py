"""The source queue: live, it bounds the frames waiting (not the audio that comes with them) and drops the
oldest; read as fast as wanted, it makes the decoder wait and drops nothing."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from cuecast.streams.sources import ItemQueue, ThreadedSource
from cuecast.types import AudioChunk, EndOfStream, Frame, SourceInfo


def frame(t):
    return Frame(t=t, index=int(t * 25), image=np.zeros((4, 4, 3), np.uint8))


def chunk(t):
    return AudioChunk(t=t, samples=np.zeros(1024, np.float32), rate=48000)


def drain(q: ItemQueue) -> list:
    async def take():
        q.bind(asyncio.get_running_loop())
        return [await q.get() for _ in range(len(q.items))]
    return asyncio.run(take())


def test_audio_with_the_frames_pushes_no_frame_out():
    q = ItemQueue(2, live=True)
    dropped = sum(q.offer(x) for x in (frame(0.0), chunk(0.0), chunk(0.021), frame(0.04), chunk(0.043), chunk(0.064)))
    assert dropped == 0
    assert [type(x).__name__ for x in drain(q)] == ["Frame", "AudioChunk", "AudioChunk", "Frame", "AudioChunk", "AudioChunk"]
    assert q.frames == 0


def test_one_frame_too_many_drops_the_oldest_frame_and_keeps_the_audio():
    q = ItemQueue(2, live=True)
    for x in (chunk(-0.021), frame(0.0), chunk(0.0), frame(0.04), chunk(0.043)):
        q.offer(x)
    assert q.offer(frame(0.08)) == 1 and q.dropped == 1
    left = [(type(x).__name__, x.t) for x in drain(q)]
    # the oldest frame goes with what waited before it; the audio after it still reaches the analysis
    assert left == [("AudioChunk", 0.0), ("Frame", 0.04), ("AudioChunk", 0.043), ("Frame", 0.08)]


class Counting(ThreadedSource):
    """A source of n frames as fast as its thread makes them; it notes how far ahead of the reader it got."""

    def __init__(self, n: int, live: bool, frames: int = 3):
        super().__init__(SourceInfo("test", "counting", live=live), queue_frames=frames)
        self.n, self.made = n, 0
        self.gate = threading.Event()

    def _items(self):
        for i in range(self.n):
            self.made = i + 1
            yield frame(i / 25)
            if i == 5:
                self.gate.set()


def read_slowly(src: Counting, pause: float = 0.05) -> tuple[list[float], int]:
    async def go():
        got, ahead = [], 0
        while True:
            try:
                item = await src.recv()
            except EndOfStream:
                break
            got.append(item.t)
            await asyncio.sleep(pause)
            ahead = max(ahead, src.made - len(got))
        await src.close()
        return got, ahead
    return asyncio.run(go())


def test_read_as_fast_as_wanted_the_decoder_waits_and_nothing_is_lost():
    src = Counting(20, live=False, frames=3)
    got, ahead = read_slowly(src)
    assert got == pytest.approx([i / 25 for i in range(20)])
    assert src.dropped == 0 and ahead <= 4  # the queue's 3 frames and the one in the decoder's hand


def test_live_the_decoder_never_waits_and_the_drops_are_counted():
    src = Counting(20, live=True, frames=3)
    got, _ = read_slowly(src)
    assert src.dropped > 0 and len(got) + src.dropped == 20
    assert got == sorted(got) and got[-1] == pytest.approx(19 / 25)  # the newest frame always arrives


def test_a_failing_decoder_is_raised_by_recv_and_close_is_idempotent():
    class Failing(ThreadedSource):
        def _items(self):
            yield frame(0.0)
            raise RuntimeError("the capture device went away")

    async def go():
        src = Failing(SourceInfo("test", "failing", live=True))
        assert (await src.recv()).t == 0.0
        with pytest.raises(RuntimeError, match="went away"):
            await src.recv()
        with pytest.raises(EndOfStream):
            await src.recv()
        await src.close()
        await src.close()
    asyncio.run(go())
