"""soundtrack.mp4 of `cuecast render`: the rendered soundtrack put onto the input video.

It is written by the same MediaWriter as `cuecast live --video-out`. The picture is copied packet for
packet when its codec fits MP4 (no quality loss, fast); otherwise it is re-encoded with libx264. The audio is AAC from the WAV (optionally mixed with the input's own sound),
placed at media time zero (the first video frame) and padded or trimmed to the video's length.
"""

from __future__ import annotations

import math
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av

import numpy as np

from cuecast.streams.files import replacing
from cuecast.streams.limits import MediaClock
from cuecast.streams.video_out import EncoderSettings, MediaWriter, Target, VideoOutError

# Codecs MP4 players take as they are, with the sample entry tag MP4 uses for each (an AVI's 'H264' or
# an MKV's empty tag would be refused; hvc1 is the HEVC tag Apple players need).
COPY_CODECS = {"h264": "avc1", "hevc": "hvc1", "mpeg4": "mp4v", "av1": "av01", "vp9": "vp09"}
AUDIO_BLOCK = 1024 * 64  # frames read from the WAV at a time (1.5 s at 44.1 kHz)
# Re-encoding only happens for codecs MP4 does not take, and render must stay faster than real time on two
# cores (veryfast managed 0.6x real time at 720p here, ultrafast 1.3x under load): quality mode, ultrafast.
RENDER_SETTINGS = EncoderSettings(preset="ultrafast", crf=20, keyframe_s=0, bframes=None, audio_kbps=192)



class MuxError(Exception):
    """The MP4 cannot be written (the engine reports it as a user error)."""


@dataclass(slots=True)
class _VideoSpan:
    start: float  # seconds of the first frame: media time zero
    end: float  # seconds where the last frame ends, in the output's time (discontinuities closed up)
    codec: str
    rotation: int
    clock: MediaClock | None = None  # the input's frame times -> the output's (streams/limits.py)
    stop: float = math.inf  # input time from which frames are left out (past the longest duration)

    def out_time(self, t: float) -> float:
        """Input presentation time -> the output's: a jump longer than max_gap_s is closed up, as in the
        analysis, so the picture stays with its music."""
        return t - (self.clock.shift_at(t) if self.clock is not None else 0.0)

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


def mux_soundtrack(video_in: str | Path, wav_path: str | Path, out_path: str | Path,
                   original_audio_mix: float = 0.0, max_gap_s: float = 10.0, max_duration_s: float = 4 * 3600.0) -> None:
    """Write out_path: the video of video_in with the WAV as its one audio stream, as long as the video.

    max_gap_s and max_duration_s: the source's limits (SourceConfig), so the picture is timed as the music was.
    """
    out_path = Path(out_path)
    span = video_span(video_in, max_gap_s, max_duration_s)
    rate = _wav_rate(wav_path)

    def audio() -> Iterator[np.ndarray]:  # made afresh for each attempt (copy, then re-encode)
        return _soundtrack_blocks(wav_path, int(round(span.duration * rate)), rate, video_in, span.start,
                                  original_audio_mix)

    try:
        with replacing(out_path, suffix=".part.mp4") as tmp:
            copy = span.codec in COPY_CODECS
            try:
                _write(video_in, str(tmp), audio(), rate, span, copy)
            except (av.error.FFmpegError, VideoOutError):
                if not copy:
                    raise
                _write(video_in, str(tmp), audio(), rate, span, copy=False)  # e.g. a codec tag MP4 refuses
    except av.error.FFmpegError as e:  # its text names our hidden temporary file: say what went wrong only
        raise MuxError(f"cannot write {out_path}: {getattr(e, 'strerror', None) or type(e).__name__}") from None
    except VideoOutError as e:
        raise MuxError(str(e).replace(str(tmp), str(out_path))) from None
    except OSError as e:
        raise MuxError(f"cannot write {out_path}: {e.strerror or e}") from None


def video_span(path: str | Path, max_gap_s: float = 10.0, max_duration_s: float = 4 * 3600.0) -> _VideoSpan:
    """First presentation time and end of the video stream, from packets (no decoding), with the input's
    discontinuities closed up and at most max_duration_s long."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise MuxError(f"{path} has no video stream")
            vs = c.streams.video[0]
            tb = vs.time_base
            fps = float(vs.average_rate or vs.guessed_rate or 25)
            times = []
            for packet in c.demux(vs):
                if packet.pts is None:
                    continue
                t = float(packet.pts * tb)
                times.append((t, float(packet.duration * tb) if packet.duration else 1.0 / fps))
            if not times:
                raise MuxError(f"{path} has no video frames")
            times.sort()
            clock = MediaClock(max_gap_s, max_duration_s, 1.0 / fps)
            start, end, stop = times[0][0], times[0][0], math.inf
            for t, dur in times:
                out = clock.t(t)
                if out is None:
                    stop = t
                    break
                end = max(end, start + out + dur)
            rotation = 0
            c.seek(0)
            for frame in c.decode(vs):
                rotation = int(getattr(frame, "rotation", 0) or 0)
                break
            return _VideoSpan(start, end, vs.codec_context.name, rotation, clock if clock.jumps else None, stop)
    except av.error.FFmpegError as e:
        raise MuxError(f"cannot read {path}: {e}") from None


def _wav_rate(path: str | Path) -> int:
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() not in (1, 2):
                raise MuxError(f"{path}: expected a 16-bit mono or stereo PCM WAV")
            return w.getframerate()
    except (OSError, wave.Error, EOFError) as e:
        raise MuxError(f"cannot read {path}: {e}") from None


def _soundtrack_blocks(wav_path: str | Path, n: int, rate: int, video_in: str | Path, start: float,
                       mix: float) -> Iterator[np.ndarray]:
    """float32 (k, 2) blocks, n frames in all: the WAV padded with silence or cut, plus the input's sound."""
    original = _OriginalAudio(video_in, start, rate) if mix > 0 else None
    try:
        with wave.open(str(wav_path), "rb") as w:
            ch = w.getnchannels()
            for pos in range(0, n, AUDIO_BLOCK):
                k = min(AUDIO_BLOCK, n - pos)
                data = np.frombuffer(w.readframes(k), dtype="<i2").reshape(-1, ch).astype(np.float32) / 32767.0
                block = np.zeros((k, 2), np.float32)
                block[:len(data)] = data if ch == 2 else np.repeat(data, 2, axis=1)
                if original is not None:
                    block = np.clip(block + mix * original.take(pos, k), -1.0, 1.0)
                yield block
    finally:
        if original is not None:
            original.close()


class _OriginalAudio:
    """The input's own sound, resampled to stereo at `rate` and cut into blocks aligned to media time zero."""

    def __init__(self, path: str | Path, start: float, rate: int):
        self.container = av.open(str(path))
        self.start, self.rate = start, rate
        self.pending: list[tuple[int, np.ndarray]] = []  # (first frame, samples) decoded, not yet used up
        self.frames = self._decode() if self.container.streams.audio else iter(())

    def _decode(self) -> Iterator[tuple[int, np.ndarray]]:
        resampler = av.AudioResampler(format="flt", layout="stereo", rate=self.rate)
        for packet in self.container.demux(self.container.streams.audio[0]):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue  # a corrupt packet: leave a gap rather than fail the whole file
            for frame in frames:
                if frame.pts is None:
                    continue
                at = int(round((float(frame.pts * frame.time_base) - self.start) * self.rate))
                for r in resampler.resample(frame):
                    yield at, r.to_ndarray().reshape(-1, 2)
                    at += r.samples

    def take(self, pos: int, n: int) -> np.ndarray:
        while not self.pending or self.pending[-1][0] + len(self.pending[-1][1]) < pos + n:
            nxt = next(self.frames, None)
            if nxt is None:
                break
            self.pending.append(nxt)
        out = np.zeros((n, 2), np.float32)
        for at, chunk in self.pending:
            lo, hi = max(pos, at), min(pos + n, at + len(chunk))
            if hi > lo:
                out[lo - pos:hi - pos] = chunk[lo - at:hi - at]
        self.pending = [(at, c) for at, c in self.pending if at + len(c) > pos + n]
        return out

    def close(self) -> None:
        self.container.close()


def _write(video_in: str | Path, out_file: str, audio: Iterator[np.ndarray], rate: int, span: _VideoSpan,
           copy: bool) -> None:
    """The same writer as `cuecast live --video-out`, fed in time order from the file and the WAV."""
    with av.open(str(video_in)) as inp:
        vs = inp.streams.video[0]
        writer = MediaWriter(Target(out_file, "mp4", True), rate, RENDER_SETTINGS)
        try:
            if copy:
                writer.add_copied_video(vs, COPY_CODECS[span.codec], span.rotation)
            else:
                cc = vs.codec_context
                # keep the input's timestamps: variable frame rate stays as it was
                writer.add_encoded_video(cc.width, cc.height, float(vs.average_rate or vs.guessed_rate or 25),
                                         rotation=span.rotation, time_base=vs.time_base,
                                         sample_aspect_ratio=vs.sample_aspect_ratio)
            writer.add_audio(start=span.start)
            audio_t = span.start  # where the audio written so far ends
            for t, packets in (_copy_packets(inp, vs, span) if copy else _encode_video(inp, vs, writer, span)):
                while audio_t <= t:  # the soundtrack up to this picture first: players need no large buffers
                    block = next(audio, None)
                    if block is None:
                        audio_t = math.inf
                        break
                    writer.mux(writer.encode_audio(block))
                    audio_t += len(block) / rate
                writer.mux(packets)
            for block in audio:
                writer.mux(writer.encode_audio(block))
        finally:
            writer.close()


def _copy_packets(inp, vs, span: _VideoSpan) -> Iterator[tuple[float, list]]:
    tb = vs.time_base
    for packet in inp.demux(vs):
        if packet.dts is None and packet.pts is None:
            continue  # the demuxer's flush packet
        t = float((packet.pts if packet.pts is not None else packet.dts) * tb)
        if t >= span.stop:
            continue
        shift = int(round((t - span.out_time(t)) / tb))
        if shift:
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts = None if packet.dts is None else packet.dts - shift
        ts = packet.dts if packet.dts is not None else packet.pts
        yield float(ts * tb), [packet]


def _encode_video(inp, vs, writer: MediaWriter, span: _VideoSpan) -> Iterator[tuple[float, list]]:
    vs.thread_type = "AUTO"
    last_pts = None
    for frame in inp.decode(vs):
        if frame.pts is None or (last_pts is not None and frame.pts <= last_pts):
            continue  # x264 refuses repeated timestamps; a duplicate frame adds nothing
        last_pts = frame.pts
        t = float(frame.pts * vs.time_base)
        if t >= span.stop:
            break
        t = span.out_time(t)
        yield t, writer.encode_picture(frame, t)
    yield math.inf, writer.flush_video()
