"""Sources by spec (`open_source`), and the machinery every thread-decoded source shares.

A source that decodes with a blocking library (PyAV) runs the decoding on its own thread and hands items
to `recv()` through a bounded queue (ItemQueue). That queue holds the one live rule: a live source never
blocks its decoder, so when the analysis falls behind, the oldest waiting frame goes (and is counted); a
source read as fast as wanted (a render) blocks its decoder instead, and drops nothing.

Schemes: `file:PATH` or a bare path, `device:/dev/video0?size=WxH&fps=N&format=F`, `lavfi:GRAPH`,
`webrtc[:HOST:PORT]` (streams/webrtc.py), `pipe:PATH` (a FIFO or unix socket) or `-` (stdin) read as a
live stream, and network URLs `http(s)://` (files, HLS), `rtsp://`, `rtmp://`,
`srt://`, `udp://` (streams/network.py). Other modules add theirs with `register(match, opener)`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from pathlib import Path
from typing import AsyncIterator, Callable, Iterator
from urllib.parse import parse_qsl

from cuecast.types import AudioChunk, EndOfStream, Frame, InputSound, Source, SourceError, SourceInfo

Item = Frame | AudioChunk | InputSound
_END = object()


class ItemQueue:
    """Decoder thread -> event loop. At most `frames` video frames wait; audio rides along uncounted (about
    two chunks come with every frame, and counted they pushed frames out whenever an analysis ran late).

    live: when one frame more comes, the oldest frame goes with the audio queued before it, never
    blocking the decoder. Not live: the decoder waits for room."""

    def __init__(self, frames: int, live: bool):
        self.limit = max(1, frames)
        self.live = live
        self.items: deque = deque()
        self.frames = 0
        self.dropped = 0
        self._room = threading.Semaphore(self.limit)  # not live: one permit per waiting frame
        self.tap: Callable[[Item], None] | None = None  # sees every item before the drop rule (--video-out)
        self._early: float | None = None  # the earliest (arrival - media time) of the frames dropped since a get
        self._ready: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._ready = loop, asyncio.Event()

    # ---- decoder side (its own thread) ----
    def put(self, item, stop: threading.Event) -> bool:
        """Hand an item over; False when the consumer is gone (stop set, or its loop closed)."""
        if self.tap is not None:
            self.tap(item)
        if isinstance(item, InputSound):
            return not stop.is_set()  # for the tap only
        if isinstance(item, Frame):
            if not item.arrived:
                item.arrived = time.monotonic()  # before it waits in the queue: the live clock's anchor
            if not self.live:
                while not self._room.acquire(timeout=0.1):
                    if stop.is_set():
                        return False
        try:
            self._loop.call_soon_threadsafe(self.offer, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return False
        return not stop.is_set()

    # ---- loop side ----
    def push(self, item) -> int:
        """Queue an item made on the loop itself (webrtc), shown to the tap first as put() does."""
        if self.tap is not None:
            self.tap(item)
        return 0 if isinstance(item, InputSound) else self.offer(item)

    def offer(self, item) -> int:
        """Queue an item without waiting; returns how many frames it pushed out (live only)."""
        dropped = 0
        if isinstance(item, Frame):
            while self.live and self.frames >= self.limit:
                gone = self.items.popleft()
                if isinstance(gone, Frame):
                    self.frames -= 1
                    dropped += 1
                    if gone.arrived:
                        lead = gone.arrived - gone.t
                        self._early = lead if self._early is None else min(self._early, lead)
            self.frames += 1
        self.items.append(item)
        self.dropped += dropped
        if self._ready is not None:
            self._ready.set()
        return dropped

    async def get(self):
        while not self.items:
            self._ready.clear()
            await self._ready.wait()
        item = self.items.popleft()
        if isinstance(item, Frame):
            self.frames -= 1
            if not self.live:
                self._room.release()
            if self._early is not None and item.arrived:
                # the live clock anchors on the earliest arrival: a frame dropped unseen (the analysis was
                # busy while the source settled) still counts, as the arrival this one would have had on its pace
                item.arrived = min(item.arrived, self._early + item.t)
                self._early = None
        return item

    def release_all(self) -> None:
        """Unblock a decoder waiting for room (close)."""
        for _ in range(self.limit):
            self._room.release()


class ThreadedSource:
    """A Source whose items come from a blocking generator, `_items()`, run on a thread of its own.

    The thread starts with the first recv(); close() stops it. A failure on the thread is raised by recv()."""

    def __init__(self, info: SourceInfo, queue_frames: int = 32):
        self.info = info
        self._queue = ItemQueue(queue_frames, info.live)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ended = False

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def tap(self, fn: Callable[[Item], None]) -> None:
        """Call fn(item) on the decoding thread for every item, before the live queue may drop it: a writer
        of the picture must get every frame however slow the analysis is. fn must not block."""
        self._queue.tap = fn

    def _items(self) -> Iterator[Item]:
        raise NotImplementedError

    def _paced(self, items: Iterator[Item]) -> Iterator[Item]:
        """Items no earlier than their media time after the first: a file or a test pattern standing in
        for a live feed."""
        wall0 = time.monotonic()
        for item in items:
            delay = wall0 + item.t - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            yield item

    def _run(self) -> None:
        final: object = _END
        try:
            for item in self._items():
                if not self._queue.put(item, self._stop):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to recv(), which raises it on the loop
            final = e
        try:
            self._queue._loop.call_soon_threadsafe(self._queue.offer, final)
        except RuntimeError:
            pass  # the loop is gone: the engine already ended

    async def recv(self) -> Item:
        if self._ended:
            raise EndOfStream
        if self._thread is None:
            self._queue.bind(asyncio.get_running_loop())
            self._thread = threading.Thread(target=self._run, name=f"cuecast-{self.info.kind}", daemon=True)
            self._thread.start()
        item = await self._queue.get()
        if item is _END:
            self._ended = True
            raise EndOfStream
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        return item

    async def close(self) -> None:
        self._ended = True
        if self._stop.is_set():
            return
        self._stop.set()
        self._queue.release_all()
        t = self._thread
        if t is not None and t.is_alive():
            # a capture stuck in a read is left to end on its own (the thread is a daemon)
            await asyncio.get_running_loop().run_in_executor(None, t.join, 2.0)

    async def __aiter__(self) -> AsyncIterator[Item]:
        while True:
            try:
                yield await self.recv()
            except EndOfStream:
                return


# ---- opening a source by spec -------------------------------------------------------------------------

Opener = Callable[..., Source]
_openers: list[tuple[Callable[[str], bool], Opener]] = []


def register(match: str | Callable[[str], bool], opener: Opener) -> None:
    """Add a kind of source: `match` is a scheme ("rtsp" matches "rtsp:...") or a predicate on the spec;
    opener(spec, cfg, *, realtime, keep_picture, loop) returns the Source or raises SourceError."""
    if isinstance(match, str):
        scheme = match.lower()
        _openers.append((lambda spec: spec.partition(":")[0].lower() == scheme and ":" in spec, opener))
    else:
        _openers.append((match, opener))


def open_source(spec: str, cfg, *, realtime: bool, keep_picture: bool = False, loop: bool = False) -> Source:
    """The source a spec names (see the module docstring); cfg is the SourceConfig. A bad spec, a missing
    file or device raise SourceError with a one-line reason."""
    spec = str(spec)
    for match, opener in _openers:
        if match(spec):
            return opener(spec, cfg, realtime=realtime, keep_picture=keep_picture, loop=loop)
    return _open_file(spec, cfg, realtime=realtime, keep_picture=keep_picture, loop=loop)


def _open_file(spec: str, cfg, *, realtime: bool, keep_picture: bool, loop: bool) -> Source:
    from cuecast.streams.video import FileSource

    scheme, sep, rest = spec.partition(":")
    path = rest if scheme == "file" and sep else spec
    if not Path(path).exists():
        hint = "" if scheme == "file" or not sep or len(scheme) == 1 else \
            f" (unknown source kind {scheme!r}; sources: {', '.join(known_schemes())} or a path)"
        raise SourceError(f"no such file: {path}{hint}")
    return FileSource(path, cfg.analysis_width, audio=cfg.audio, realtime=realtime, loop=loop,
                      threads=cfg.decode_threads, keep_picture=keep_picture, queue_frames=cfg.queue_frames, name=spec,
                      max_gap_s=cfg.max_gap_s, max_duration_s=cfg.max_duration_s)


def _open_capture(spec: str, cfg, *, realtime: bool, keep_picture: bool, loop: bool) -> Source:
    from cuecast.streams.device import DeviceSource

    kind, _, rest = spec.partition(":")
    target, options = rest, {}
    if kind == "device" and "?" in rest:
        target, _, query = rest.partition("?")
        options = capture_options(query)
    return DeviceSource(target, kind=kind, analysis_width=cfg.analysis_width, options=options,
                        keep_picture=keep_picture, queue_frames=cfg.queue_frames, name=spec)


_CAPTURE_KEYS = {"size": "video_size", "fps": "framerate", "format": "input_format"}


def capture_options(query: str) -> dict[str, str]:
    """`size=1280x720&fps=30&format=mjpeg` -> FFmpeg's capture options."""
    out = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _CAPTURE_KEYS:
            raise SourceError(f"device: unknown option {key!r} (options: {', '.join(_CAPTURE_KEYS)})")
        out[_CAPTURE_KEYS[key]] = value
    return out


def _open_network(spec: str, cfg, **kw) -> Source:
    from cuecast.streams.network import open_network

    return open_network(spec, cfg, **kw)


def _open_webrtc(spec: str, cfg, **kw) -> Source:
    from cuecast.streams.webrtc import open_webrtc

    return open_webrtc(spec, cfg, **kw)


def _open_pipe(spec: str, cfg, **kw) -> Source:
    from cuecast.streams.network import open_network

    path = spec.partition(":")[2]
    if spec != "-" and not Path(path).exists():
        raise SourceError(f"{spec}: no such pipe or socket: {path} (make one with mkfifo, or give - for stdin)")
    return open_network(spec, cfg, **kw)


def is_pipe(spec: str) -> bool:
    """`pipe:PATH` (a FIFO or a unix socket) or `-` (standard input): a live stream its writer sends."""
    return spec == "-" or spec.lower().startswith("pipe:")


def is_webrtc(spec: str) -> bool:
    return spec == "webrtc" or spec.startswith("webrtc:")


NETWORK_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp", "tcp")


def known_schemes() -> list[str]:
    return ["file:PATH", "device:PATH", "lavfi:GRAPH", "webrtc[:HOST:PORT]", "pipe:PATH", "-",
            *(f"{s}://" for s in ("http", "https", "rtsp", "rtmp", "srt", "udp"))]


register("device", _open_capture)
register("lavfi", _open_capture)
register(is_webrtc, _open_webrtc)
register(is_pipe, _open_pipe)
for _scheme in NETWORK_SCHEMES:
    register(lambda spec, prefix=f"{_scheme}://": spec.lower().startswith(prefix), _open_network)
