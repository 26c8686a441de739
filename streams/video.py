"""Video files: decode frames (and audio) with PyAV, in media time, downscaled for analysis.

FileDecoder is the plain iterator of Frame and AudioChunk items in presentation order (tools and
one-pass commands read it directly); FileSource is the same as an async Source for the engine. They read
real files as they are: timestamps that do not start at zero, variable frame rate, rotation metadata,
non-square pixels, containers without a frame count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from cuecast.streams.sources import ThreadedSource
from cuecast.streams.limits import InputKindError, MediaClock, check_input_file, truncation_warning
from cuecast.types import AudioChunk, Frame, InputSound, SourceError, SourceInfo

AUDIO_RATE = 22050  # enough for loudness, spectral brightness and onsets
AUDIO_BLOCK = 2205  # samples per AudioChunk (0.1 s): codec frames are ~20 ms, too small to queue one by one


@dataclass(slots=True)
class VideoInfo:
    path: str
    width: int  # as displayed: rotation and pixel aspect ratio applied
    height: int
    fps: float  # average; frames may still arrive at a variable rate
    duration: float  # seconds, best estimate from the container (0 when unknown)
    has_audio: bool
    rotation: int  # degrees the decoded picture is turned for display


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise SourceError(f"no such file: {path}")
    try:  # a FIFO or a socket would wait forever for a writer: refused, not hung on
        check_input_file(str(p), f"to read it as a live stream, give pipe:{p} (or - for standard input)")
    except InputKindError as e:
        raise SourceError(str(e)) from None
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise SourceError(f"{path} is not a video file FFmpeg can read ({e.__class__.__name__})") from None
    if not container.streams.video:
        container.close()
        raise SourceError(f"{path} has no video stream")
    return container


def _display_size(stream, rotation: int) -> tuple[int, int]:
    w, h = stream.codec_context.width, stream.codec_context.height
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if sar and sar > 0 and sar != 1:
        w = int(round(w * float(sar)))
    if rotation % 180:
        w, h = h, w
    return w, h


def probe(path: str | Path) -> VideoInfo:
    """Read the header and the first frame; raise SourceError when there is no decodable frame."""
    with _open(path) as container:
        vs = container.streams.video[0]
        try:
            first = next(container.decode(vs), None)
        except av.error.FFmpegError as e:
            raise SourceError(f"{path}: cannot decode video ({e.__class__.__name__})") from None
        if first is None:
            raise SourceError(f"{path} has no video frames")
        rotation = int(getattr(first, "rotation", 0) or 0)
        w, h = _display_size(vs, rotation)
        if vs.duration and vs.time_base:
            duration = float(vs.duration * vs.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        fps = float(vs.average_rate or vs.guessed_rate or 0) or 25.0
        return VideoInfo(str(path), w, h, fps, duration, bool(container.streams.audio), rotation)


def analysis_size(width: int, height: int, analysis_width: int) -> tuple[int, int]:
    """Downscaled size keeping the display aspect ratio, at most analysis_width wide and no more pixels
    than a 16:9 picture of that width (a portrait phone video must not cost four times a landscape one).
    Even numbers suit every scaler."""
    scale = min(1.0, analysis_width / width, math.sqrt(analysis_width * analysis_width * 9 / 16 / (width * height)))
    aw = max(2, int(round(width * scale / 2)) * 2)
    ah = max(2, int(round(height * scale / 2)) * 2)
    return aw, ah


class FileDecoder:
    """Frames and audio of a video file, as fast as decoding allows.

    loop=True starts again at the end with media time continuing, for installations that run all night;
    keep_picture=True keeps the full-size decoded frame on Frame.picture.
    """

    def __init__(self, path: str | Path, analysis_width: int = 320, audio: bool = True, loop: bool = False,
                 threads: int = 0, keep_picture: bool = False, max_gap_s: float = 10.0,
                 max_duration_s: float = 4 * 3600.0):
        self.info = probe(path)
        self.max_gap_s, self.max_duration_s = max_gap_s, max_duration_s
        self.warnings: list[str] = []  # said once each: a discontinuity, the length limit, a truncated file
        self.path = str(path)
        self.analysis_width = analysis_width
        self.audio = audio and self.info.has_audio
        self.loop = loop
        self.threads = threads
        self.keep_picture = keep_picture
        self.size = analysis_size(self.info.width, self.info.height, analysis_width)

    def __iter__(self) -> Iterator[Frame | AudioChunk]:
        offset, index = 0.0, 0
        while True:
            last_t = offset
            for item in self._decode_once(offset, index):
                if isinstance(item, Frame):
                    index = item.index + 1
                    last_t = item.t
                yield item
            if not self.loop or index == 0:
                return
            offset = last_t + 1.0 / self.info.fps

    def _decode_once(self, offset: float, index: int) -> Iterator[Frame | AudioChunk]:
        with _open(self.path) as container:
            vs = container.streams.video[0]
            vs.thread_type = "AUTO"
            if self.threads:
                vs.codec_context.thread_count = self.threads
            streams = [vs] + ([container.streams.audio[0]] if self.audio else [])
            resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE) if self.audio else None
            t0 = None  # media time zero is the first video frame's presentation time
            clock = MediaClock(self.max_gap_s, self.max_duration_s, 1.0 / self.info.fps, self.info.path,
                               self._warn if offset == 0 else None)  # a loop's later passes say nothing new
            pending_audio: list[av.AudioFrame] = []
            blocks = _AudioBlocks()
            last_pts, broken = None, 0
            for packet in container.demux(streams):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    broken += 1
                    continue  # a corrupt packet: real streams have them; skip rather than stop
                for frame in frames:
                    if isinstance(frame, av.VideoFrame):
                        if frame.pts is None:
                            continue
                        pts = float(frame.pts * frame.time_base)
                        t = clock.t(pts)
                        if t is None:
                            break  # past the longest input a run takes (said once, by the clock)
                        last_pts = pts
                        if t0 is None:
                            t0 = pts
                            for af in pending_audio:
                                yield from self._sound(af, resampler, t0, offset, clock, blocks)
                            pending_audio.clear()
                        yield Frame(t=offset + t, index=index, image=self._picture(frame),
                                    source_size=(self.info.width, self.info.height),
                                    picture=frame if self.keep_picture else None)
                        index += 1
                    elif resampler is not None and not clock.stopped:
                        if t0 is None:
                            pending_audio.append(frame)
                        else:
                            yield from self._sound(frame, resampler, t0, offset, clock, blocks)
                if clock.stopped:
                    break
            yield from blocks.flush()
            if offset == 0 and t0 is not None and not clock.stopped:
                short = truncation_warning(self.info.path, last_pts - t0 + 1.0 / self.info.fps, self.info.duration)
                if short is not None and not clock.jumps:
                    self._warn(short + (f" ({broken} damaged packets skipped)" if broken else ""))

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def _picture(self, frame: av.VideoFrame) -> np.ndarray:
        rotation = int(getattr(frame, "rotation", 0) or 0)
        w, h = self.size
        if rotation % 180:
            w, h = h, w  # scale in the coded orientation, then turn
        img = frame.to_ndarray(width=w, height=h, format="rgb24")
        if rotation:
            # PyAV's rotation is counter-clockwise degrees to turn for display
            img = np.ascontiguousarray(np.rot90(img, k=(rotation // 90) % 4))
        return img

    def _sound(self, frame: av.AudioFrame, resampler, t0: float, offset: float, clock: MediaClock,
               blocks: "_AudioBlocks") -> Iterator[AudioChunk | InputSound]:
        """The analysis's mono blocks of a decoded audio frame; first the frame itself, for a writer of the
        picture (keep_picture)."""
        if self.keep_picture and frame.pts is not None:
            pts = float(frame.pts * frame.time_base)
            yield InputSound(offset + pts - t0 - clock.shift_at(pts), frame)
        yield from blocks.add(self._audio(frame, resampler, t0, offset, clock))

    def _audio(self, frame: av.AudioFrame, resampler, t0: float, offset: float,
               clock: MediaClock) -> Iterator[AudioChunk]:
        if frame.pts is None:
            return
        pts = float(frame.pts * frame.time_base)
        t = offset + pts - t0 - clock.shift_at(pts)
        for out in resampler.resample(frame):
            samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            if samples.size:
                yield AudioChunk(t=t, samples=samples, rate=AUDIO_RATE)


class _AudioBlocks:
    """Joins decoded audio into AUDIO_BLOCK-sample chunks; a gap in the timestamps starts a new chunk."""

    def __init__(self):
        self.t: float | None = None
        self.parts: list[np.ndarray] = []
        self.n = 0

    def add(self, chunks: Iterator[AudioChunk]) -> Iterator[AudioChunk]:
        for c in chunks:
            if self.t is not None and abs(self.t + self.n / c.rate - c.t) > 0.05:
                yield from self.flush()
            if self.t is None:
                self.t = c.t
            self.parts.append(c.samples)
            self.n += len(c.samples)
            if self.n >= AUDIO_BLOCK:
                yield from self.flush()

    def flush(self) -> Iterator[AudioChunk]:
        if self.n:
            yield AudioChunk(t=self.t, samples=np.concatenate(self.parts), rate=AUDIO_RATE)
        self.t, self.parts, self.n = None, [], 0


class FileSource(ThreadedSource):
    """A video file as an async Source: decoded on its own thread, as fast as the engine takes it, or at
    real-time pace (realtime=True, a file standing in for a live feed: old frames are dropped then)."""

    def __init__(self, path: str | Path, analysis_width: int = 320, audio: bool = True, realtime: bool = False,
                 loop: bool = False, threads: int = 0, keep_picture: bool = False, queue_frames: int = 32,
                 name: str | None = None, max_gap_s: float = 10.0, max_duration_s: float = 4 * 3600.0):
        self.decoder = FileDecoder(path, analysis_width, audio, loop, threads, keep_picture, max_gap_s, max_duration_s)
        v = self.decoder.info
        super().__init__(SourceInfo("file", name or str(path), v.width, v.height, v.fps, self.decoder.audio,
                                    live=realtime, duration=0.0 if loop else v.duration), queue_frames)

    @property
    def warnings(self) -> list[str]:
        """What the input did that the user should know (a discontinuity, the length limit, a truncated file)."""
        return self.decoder.warnings

    def _items(self) -> Iterator[Frame | AudioChunk]:
        items = iter(self.decoder)
        return self._paced(items) if self.info.live else items
