"""Network video through PyAV/FFmpeg: http(s), HLS (.m3u8), rtsp, rtmp, srt and udp (MPEG-TS).

Two ways in. A pull URL (a web server, an RTSP camera, someone's RTMP/SRT server) is opened at once, so a
wrong address is a one-line error before the engine starts. A listening URL (`rtmp://HOST:PORT/app/key?listen=1`,
`srt://HOST:PORT?mode=listener`, `udp://@:PORT`) waits for a sender such as OBS.

A live stream that drops (the sender stops, the network hiccups) is opened again with back-off while the
engine keeps playing from its own clock; media time then continues from the wall clock, so picture and
music stay in step across the gap. A stream whose timestamps jump or restart is timed by arrival the same
way; sane timestamps are used as they are. A stream with a known length (a file on a web server, HLS video
on demand) is read to its end like a file.

A pipe (`pipe:PATH` for a named pipe or a unix socket, `-` for standard input) is a stream too: what its
writer sends (MPEG-TS, Matroska, anything FFmpeg reads without seeking), timed like a live stream, paced to
real time if the writer is faster (`cat clip.ts > fifo` plays like a live feed), and its end (the writer
closes it) is the end of the input.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import av
import numpy as np

from cuecast.types import AudioChunk, Frame, InputSound, SourceError, SourceInfo

from .sources import NETWORK_SCHEMES, ThreadedSource, is_pipe
from .video import AUDIO_RATE, _AudioBlocks, analysis_size

JUMP_S = 1.0  # timestamps that disagree with the arrival clock by more than this have jumped or restarted
CATCH_UP_S = 1.5  # frames late by more than JUMP_S, by as much for this long, have jumped (a sender's pause)
CATCH_UP_STEP = 0.15  # ...while a lateness that grows or shrinks by this much is our reader's backlog
STALL_S = 1.0  # no picture for this long: the stream has stalled (the music is held, then fades)
LISTEN_SLICE_S = 1.0  # a listener waits in slices this long, so close() ends the wait promptly


@dataclass(frozen=True, slots=True)
class NetworkOptions:
    connect_timeout: float = 10.0  # a pull URL that does not answer within this is an error
    read_timeout: float = 3.0  # no data for this long: the stream has dropped
    backoff_max: float = 4.0  # reconnect attempts wait 0.25, 0.5, 1, ... seconds, up to this
    give_up: float = 0.0  # seconds without a stream after which a live source ends; 0: keep trying


def is_network_url(spec: str) -> bool:
    scheme = spec.partition("://")[0].lower() if "://" in spec else ""
    return scheme in NETWORK_SCHEMES


def pipe_url(spec: str) -> str:
    """What FFmpeg opens for a pipe spec: fd 0 for `-`, a socket by `unix:`, anything else as a file."""
    if spec == "-":
        return "pipe:0"
    path = spec.partition(":")[2]
    try:
        is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        is_socket = False
    return f"unix:{path}" if is_socket else f"file:{path}"


def is_listener(url: str) -> bool:
    """True for URLs where cuecast waits for a sender rather than connecting to one."""
    if is_pipe(url):
        return True  # opening a FIFO waits for its writer: on the source's thread
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    scheme = parts.scheme.lower()
    if scheme in ("rtmp", "rtmps", "tcp", "http"):
        return query.get("listen", "0") not in ("0", "")
    if scheme == "srt":
        return query.get("mode", "caller") in ("listener", "rendezvous")
    if scheme in ("udp", "rtp"):
        return True  # datagrams are received, whoever sends them
    return False


def ffmpeg_open_args(url: str) -> tuple[str, dict[str, str]]:
    """The URL FFmpeg gets and the options that go with it.

    rtmp's `listen` is an FFmpeg option, not part of the URL (left in, it would become the stream key); udp
    gets a large receive FIFO that tolerates a late reader; every stream gets a short probe, so a live
    stream starts within about a second.
    """
    options = {"analyzeduration": "1000000", "probesize": "1000000"}
    if is_pipe(url):
        return pipe_url(url), options
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("rtmp", "rtmps"):
        query = parse_qsl(parts.query)
        kept = [(k, v) for k, v in query if k != "listen"]
        if len(kept) != len(query):
            options["listen"] = dict(query)["listen"]
            url = urlunsplit(parts._replace(query=urlencode(kept)))
    elif scheme in ("udp", "rtp"):
        query = dict(parse_qsl(parts.query))
        extra = {k: v for k, v in (("fifo_size", "1000000"), ("overrun_nonfatal", "1")) if k not in query}
        if extra:
            url = urlunsplit(parts._replace(query=urlencode({**query, **extra})))
    elif scheme in ("http", "https"):
        options.update(reconnect="1", reconnect_streamed="1", reconnect_delay_max="4")
    elif scheme == "rtsp":
        options["rtsp_transport"] = "tcp"  # loss-free through NAT and firewalls; UDP needs open ports both ways
    return url, options


class _Timestamps:
    """Media time of a live stream: its own timestamps while they run with the wall clock; when they jump,
    restart or the stream comes back after a gap, the arrival time, continuing from the last frame.

    Frames that come late with their timestamps running on (no jump) are one of two things. Our own reader
    was held up (a loaded machine): the stream's data waited in the receive buffer and now comes in faster
    than real time until it has caught up; its timestamps are right and stay. Or the sender paused and
    carries on at its own pace: its pictures are now late for good, and media time moves on by that
    lateness (as for a jump), once it has held still for CATCH_UP_S. A backlog's lateness does not hold
    still: it grows while the reader is starved, and shrinks while it catches up.
    Taking the first for the second added every stall of the reader to the picture's delay, for good."""

    def __init__(self, live: bool):
        self.live = live
        self.base: tuple[float, float] | None = None  # (stream seconds, media time) that correspond
        self.last: tuple[float, float] | None = None  # (media time, wall time) of the last frame
        self.jumps = 0
        self._offset = 0.0  # the earliest (arrival - media time) since the base: frames on time
        self._late: tuple[float, float] | None = None  # (wall, lateness) since when the lateness held still

    def restart(self) -> None:
        self.base = None  # the next frame continues from the last one by the time that passed

    def video(self, pts: float, wall: float, frame_s: float) -> float:
        if self.base is None:
            t = 0.0 if self.last is None else self.last[0] + max(frame_s, wall - self.last[1])
            self._rebase(pts, t, wall)
        t = self.base[1] + pts - self.base[0]
        if self.live and self.last is not None:
            lt, lw = self.last
            if t <= lt or t - lt > JUMP_S:  # the timestamps themselves jumped or restarted
                self.jumps += 1
                t = lt + max(frame_s, wall - lw)
                self._rebase(pts, t, wall)
            else:
                t = self._lateness(pts, t, wall)
        self.last = (t, wall)
        return t

    def _rebase(self, pts: float, t: float, wall: float) -> None:
        self.base, self._offset, self._late = (pts, t), wall - t, None

    def _lateness(self, pts: float, t: float, wall: float) -> float:
        """t, or t moved on by the frames' lateness once they show they are not catching up."""
        late = (wall - t) - self._offset
        if late < 0:
            self._offset = wall - t  # earlier than any frame before: the reference moves to it
        if late <= JUMP_S:
            self._late = None
            return t
        if self._late is None or abs(late - self._late[1]) >= CATCH_UP_STEP:
            self._late = (wall, late)  # late, or later, or catching up: a backlog so far
            return t
        if wall - self._late[0] < CATCH_UP_S:
            return t
        self.jumps += 1
        t += late  # the sender paused: its pictures go on from when they arrive
        self._rebase(pts, t, wall)
        return t

    def audio(self, pts: float) -> float | None:
        return None if self.base is None else self.base[1] + pts - self.base[0]


class NetworkSource(ThreadedSource):
    """Frames and audio of a network stream, in media time from its first frame (see the module docstring).

    realtime=True (live): a stream of known length is paced to the wall clock as a file is, a live stream
    comes at its own pace, and a live stream that drops is waited for again (the music carries on).
    realtime=False (render): read as fast as the engine takes it, to the stream's end; a live stream ends
    when its sender stops. `status` says what the source is doing ("receiving", "reconnecting", "waiting for
    a stream"); `gaps` lists (media time, seconds) of each outage, for the display and timeline.json.
    """

    def __init__(self, url: str, analysis_width: int = 320, audio: bool = True, realtime: bool = True,
                 options: NetworkOptions = NetworkOptions(), threads: int = 0, keep_picture: bool = False,
                 queue_frames: int = 32, announce: Callable[[str], None] | None = None, record_to: str | None = None):
        self.url = url
        self.record_to = record_to  # a render keeps the stream here (codec copy), to mux the soundtrack onto
        self.announce = announce or (lambda line: print(line, file=sys.stderr, flush=True))
        self.listener = is_listener(url)
        self.analysis_width = analysis_width
        self.audio = audio
        self.realtime = realtime
        self.options = options
        self.threads = threads
        self.keep_picture = keep_picture
        self.status = "waiting for a stream" if self.listener else "connecting"
        self.gaps: list[tuple[float, float]] = []
        self.reconnects = 0
        self.timestamp_jumps = 0
        self.frames = 0  # frames decoded so far (they count the index across reconnects)
        self._last_wall: float | None = None  # when the newest frame arrived
        # live: old frames give way to new ones; a render takes every frame
        super().__init__(SourceInfo("network", url, live=realtime), queue_frames)
        # a web server (a file, HLS) sends faster than real time and its end is the end; other streams come
        # at the sender's pace and, live, an end is a drop to wait out
        self._from_web = urlsplit(url).scheme.lower() in ("http", "https")
        self._pipe = is_pipe(url)  # its writer's end is the end; no read timeout (a writer may pause)
        self._described = False
        self._pending = None if self.listener else self._open(options.connect_timeout)

    def stalled_since(self) -> float | None:
        """time.monotonic() since which no picture has come (more than STALL_S ago), or None: the live
        player holds the music, then fades it, while the stream is gone."""
        last = self._last_wall
        return last if last is not None and time.monotonic() - last > STALL_S else None

    def meta(self) -> dict:
        """What timeline.json records about the stream."""
        return {"kind": "network", "url": self.url, "frames": self.frames, "reconnects": self.reconnects,
                "gaps": [list(g) for g in self.gaps], "timestamp_jumps": self.timestamp_jumps,
                "dropped": self.dropped}

    # ---- opening ---------------------------------------------------------------------------------
    def _open(self, open_timeout: float):
        """Open the stream once; SourceError when it does not answer or is not video."""
        url, opts = ffmpeg_open_args(self.url)
        try:
            container = av.open(url, options=opts,
                                timeout=None if self._pipe else (open_timeout, self.options.read_timeout))
        except av.error.ProtocolNotFoundError:
            scheme = self.url.partition("://")[0]
            raise SourceError(f"{self.url}: the FFmpeg inside PyAV here cannot read {scheme}:// streams "
                              f"(try udp:// MPEG-TS or rtmp://…?listen=1 instead)") from None
        except av.error.ExitError:
            raise SourceError(f"{self.url}: no answer within {open_timeout:g} s "
                              f"(is the sender running and the address right?)") from None
        except (av.error.FFmpegError, OSError) as e:
            raise SourceError(f"{self.url}: cannot open the stream ({_reason(e)})") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.url} has no video stream")
        self._describe(container)
        return container

    def _describe(self, container) -> None:
        vs = container.streams.video[0]
        info = self.info
        info.width, info.height = vs.codec_context.width, vs.codec_context.height
        info.fps = float(vs.average_rate or vs.guessed_rate or 0) or info.fps
        info.has_audio = self.audio and bool(container.streams.audio)
        if not self._described:
            self._described = True
            info.duration = container.duration / av.time_base if container.duration else 0.0

    def _wait_for_stream(self):
        """Open again after a drop (or the first time, for a listener), backing off; None when closed or
        when options.give_up seconds passed without a stream."""
        start, delay = time.monotonic(), 0.25
        while not self._stop.is_set():
            slice_s = LISTEN_SLICE_S if self.listener else self.options.connect_timeout
            try:
                return self._open(slice_s)
            except SourceError:
                if self._pipe:  # its writer closed without a stream (stdin at its end): nothing comes back
                    return None
                if self.options.give_up and time.monotonic() - start >= self.options.give_up:
                    return None
            if not self.listener:  # a pull URL is asked again after a pause; a listener just keeps listening
                if self._stop.wait(delay):
                    return None
                delay = min(self.options.backoff_max, delay * 2)
        return None

    # ---- reading (the source's thread) -----------------------------------------------------------
    def _items(self) -> Iterator[Frame | AudioChunk]:
        container, self._pending = self._pending, None
        if self._from_web:
            yield from self._read_web(container)
            return
        clock = _Timestamps(live=True)
        while not self._stop.is_set():
            if container is None:
                self.announce(f"cuecast: waiting for a stream on {self.url}")
                container = self._wait_for_stream()
                if container is None:
                    return
            try:
                self.status = "receiving"
                items = self._decode(container, clock)
                yield from (self._paced(items) if self._pipe and self.realtime else items)
            except (av.error.FFmpegError, OSError):
                pass  # the sender went away or went silent past the read timeout
            finally:
                container.close()
                container = None
            if not self.realtime or self._pipe:
                return  # a render records the stream to its end; a pipe's writer closing it ends it
            container = self._reconnect(clock)
            if container is None:
                return

    def _read_web(self, container) -> Iterator[Frame | AudioChunk]:
        """A file or HLS from a web server: its own timestamps, to its end; live, at real-time pace (FFmpeg's
        http client resumes a dropped download itself)."""
        if container is None:  # http://…?listen=1: a sender posts to us
            self.announce(f"cuecast: waiting for a stream on {self.url}")
            container = self._wait_for_stream()
            if container is None:
                return
        self.status = "receiving"
        items = self._decode(container, _Timestamps(live=False))
        try:
            yield from (self._paced(items) if self.realtime else items)
        except (av.error.FFmpegError, OSError) as e:
            raise SourceError(f"{self.url}: the download broke off ({_reason(e)})") from None
        finally:
            container.close()

    def _reconnect(self, clock: _Timestamps):
        gone_at = time.monotonic()
        self.status = "reconnecting"
        self.reconnects += 1
        self.announce(f"cuecast: {self.url}: the stream dropped; the music carries on while cuecast reconnects")
        clock.restart()
        container = self._wait_for_stream()
        if container is not None:
            gap = time.monotonic() - gone_at
            self.announce(f"cuecast: {self.url}: the stream is back after {gap:.1f} s")
            if clock.last is not None:
                self.gaps.append((round(clock.last[0], 3), round(gap, 3)))
        return container

    def _decode(self, container, clock: _Timestamps) -> Iterator[Frame | AudioChunk]:
        vs = container.streams.video[0]
        if self.threads:
            vs.codec_context.thread_count = self.threads
        streams = [vs]
        resampler = None
        if self.audio and container.streams.audio:
            streams.append(container.streams.audio[0])
            resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
        blocks = _AudioBlocks()
        frame_s = 1.0 / (self.info.fps or 25.0)
        recorder = _Recorder(self.record_to, streams) if self.record_to else None
        try:
            yield from self._demux(container, streams, clock, resampler, blocks, frame_s, recorder)
        finally:
            if recorder is not None:
                recorder.close()
        yield from blocks.flush()

    def _demux(self, container, streams, clock, resampler, blocks, frame_s, recorder):
        came: dict[int, float] = {}  # video pts -> when its packet was read (the decoder holds a few back)
        for packet in container.demux(streams):
            if packet.pts is not None and packet.stream.type == "video":
                came[packet.pts] = time.monotonic()
                if len(came) > 64:  # pictures the decoder never gave back (damaged ones)
                    del came[next(iter(came))]
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue  # a damaged packet (lost datagrams): real streams have them
            if recorder is not None:
                recorder.mux(packet)
            for frame in frames:
                if frame.pts is None:
                    continue
                pts = float(frame.pts * frame.time_base)
                if isinstance(frame, av.VideoFrame):
                    # a picture arrived with its data, not when the decoder's threads handed it back
                    self._last_wall = time.monotonic()
                    wall = came.pop(frame.pts, self._last_wall)
                    jumps = clock.jumps
                    t = clock.video(pts, wall, frame_s)
                    self.timestamp_jumps += clock.jumps - jumps
                    yield Frame(t=t, index=self.frames, image=self._picture(frame),
                                source_size=(frame.width, frame.height),
                                picture=frame if self.keep_picture else None, arrived=wall)
                    self.frames += 1
                elif resampler is not None:
                    t = clock.audio(pts)
                    if t is not None and t >= 0:
                        if self.keep_picture:
                            yield InputSound(t, frame)  # for --video-out, at its own rate and channels
                        yield from blocks.add(_resampled(frame, resampler, t))

    def _picture(self, frame: av.VideoFrame) -> np.ndarray:
        w, h = analysis_size(frame.width, frame.height, self.analysis_width)
        return frame.to_ndarray(width=w, height=h, format="rgb24")

    async def close(self) -> None:
        """Stop reading (within the read timeout) and reconnecting; idempotent."""
        if self._pending is not None:
            self._pending.close()
            self._pending = None
        await super().close()


def open_network(spec: str, cfg, *, realtime: bool, keep_picture: bool = False, loop: bool = False,
                 record_to: str | None = None, **_) -> NetworkSource:
    """The opener streams/sources.py registers for the network schemes."""
    options = NetworkOptions(connect_timeout=cfg.connect_timeout_s, read_timeout=cfg.read_timeout_s)
    return NetworkSource(spec, cfg.analysis_width, audio=cfg.audio, realtime=realtime, options=options,
                         threads=cfg.decode_threads, keep_picture=keep_picture, queue_frames=cfg.queue_frames,
                         record_to=record_to)


class _Recorder:
    """The packets of one stream session copied into a Matroska file (it takes any codec), as they come."""

    def __init__(self, path: str, streams):
        self.out = av.open(path, "w", format="matroska")
        self.map = {s.index: self.out.add_stream_from_template(s) for s in streams}

    def mux(self, packet) -> None:
        if packet.dts is None or packet.stream.index not in self.map:
            return  # the demuxer's empty flush packets
        packet.stream = self.map[packet.stream.index]
        try:
            self.out.mux(packet)
        except av.error.FFmpegError:
            pass  # a packet out of order in a damaged stream: the picture is still analysed

    def close(self) -> None:
        self.out.close()


def _resampled(frame: av.AudioFrame, resampler, t: float) -> Iterator[AudioChunk]:
    for out in resampler.resample(frame):
        samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        if samples.size:
            yield AudioChunk(t=t, samples=samples, rate=AUDIO_RATE)


def _reason(e: BaseException) -> str:
    """FFmpeg's reason without the URL it repeats."""
    text = getattr(e, "strerror", None) or str(e)
    return text.split(": '")[0].strip() or e.__class__.__name__
