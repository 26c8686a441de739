"""MP4 writer: put the rendered soundtrack onto the input video.

The picture is copied packet for packet when its codec fits MP4 (no quality loss, fast); otherwise it is
re-encoded with libx264. The audio is AAC from the WAV (optionally mixed with the input's own sound),
placed at media time zero (the first video frame) and padded or trimmed to the video's length.
"""

from __future__ import annotations

import math
import os
import tempfile
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Codecs MP4 players take as they are, with the sample entry tag MP4 uses for each (an AVI's 'H264' or
# an MKV's empty tag would be refused; hvc1 is the HEVC tag Apple players need).
COPY_CODECS = {"h264": "avc1", "hevc": "hvc1", "mpeg4": "mp4v", "av1": "av01", "vp9": "vp09"}
AAC_FRAME = 1024
AAC_BITRATE = 192_000


_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: os.umask can only be read by setting it

class MuxError(Exception):
    """The MP4 cannot be written (the engine reports it as a user error)."""


@dataclass(slots=True)
class _VideoSpan:
    start: float  # seconds of the first frame: media time zero
    end: float  # seconds where the last frame ends
    codec: str
    rotation: int

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


def mux_soundtrack(video_in: str | Path, wav_path: str | Path, out_path: str | Path,
                   original_audio_mix: float = 0.0) -> None:
    """Write out_path: the video of video_in with the WAV as its one audio stream, as long as the video."""
    out_path = Path(out_path)
    span = video_span(video_in)
    audio, rate = _read_wav(wav_path)
    n = int(round(span.duration * rate))
    audio = _fit(audio, n)
    if original_audio_mix > 0:
        audio = np.clip(audio + original_audio_mix * _original_audio(video_in, span, rate, n), -1.0, 1.0)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".part.mp4", dir=str(out_path.parent))
        os.close(fd)
    except OSError as e:
        raise MuxError(f"cannot write {out_path}: {e.strerror or e}") from None
    try:
        copy = span.codec in COPY_CODECS
        try:
            _write(video_in, tmp, audio, rate, span, copy)
        except av.error.FFmpegError:
            if not copy:
                raise
            _write(video_in, tmp, audio, rate, span, copy=False)  # e.g. a codec tag MP4 refuses
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs follow the umask like any file
        os.replace(tmp, out_path)
    except av.error.FFmpegError as e:
        raise MuxError(f"cannot write {out_path}: {e}") from None
    except OSError as e:
        raise MuxError(f"cannot write {out_path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def video_span(path: str | Path) -> _VideoSpan:
    """First presentation time and end of the video stream, from packets (no decoding)."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise MuxError(f"{path} has no video stream")
            vs = c.streams.video[0]
            tb = vs.time_base
            fps = float(vs.average_rate or vs.guessed_rate or 25)
            start, end = math.inf, -math.inf
            rotation = 0
            for packet in c.demux(vs):
                if packet.pts is None:
                    continue
                t = float(packet.pts * tb)
                dur = float(packet.duration * tb) if packet.duration else 1.0 / fps
                start, end = min(start, t), max(end, t + dur)
            if not math.isfinite(start):
                raise MuxError(f"{path} has no video frames")
            c.seek(0)
            for frame in c.decode(vs):
                rotation = int(getattr(frame, "rotation", 0) or 0)
                break
            return _VideoSpan(start, end, vs.codec_context.name, rotation)
    except av.error.FFmpegError as e:
        raise MuxError(f"cannot read {path}: {e}") from None


def _read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """float32 (n, 2) from a 16-bit WAV (mono is doubled)."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise MuxError(f"{path}: expected 16-bit PCM WAV")
            ch, rate = w.getnchannels(), w.getframerate()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, ch)
    except (OSError, wave.Error, EOFError) as e:
        raise MuxError(f"cannot read {path}: {e}") from None
    data = data.astype(np.float32) / 32767.0
    if ch == 1:
        data = np.repeat(data, 2, axis=1)
    return np.ascontiguousarray(data[:, :2]), rate


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    if len(audio) >= n:
        return audio[:n]
    return np.concatenate([audio, np.zeros((n - len(audio), audio.shape[1]), np.float32)])


def _original_audio(path: str | Path, span: _VideoSpan, rate: int, n: int) -> np.ndarray:
    """The input's own sound as float32 (n, 2) at `rate`, aligned to media time zero (silence if none)."""
    out = np.zeros((n, 2), np.float32)
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return out
        resampler = av.AudioResampler(format="flt", layout="stereo", rate=rate)
        for frame in c.decode(c.streams.audio[0]):
            if frame.pts is None:
                continue
            at = int(round((float(frame.pts * frame.time_base) - span.start) * rate))
            for r in resampler.resample(frame):
                _place(out, r.to_ndarray().reshape(-1, 2), at)
                at += r.samples
    return out


def _place(out: np.ndarray, chunk: np.ndarray, at: int) -> None:
    lo, hi = max(0, at), min(len(out), at + len(chunk))
    if hi > lo:
        out[lo:hi] = chunk[lo - at:hi - at]


def _write(video_in: str | Path, out_file: str, audio: np.ndarray, rate: int, span: _VideoSpan, copy: bool) -> None:
    with av.open(str(video_in)) as inp, av.open(out_file, "w", format="mp4") as out:
        vs = inp.streams.video[0]
        if copy:
            ov = out.add_stream_from_template(vs)
            ov.codec_context.codec_tag = COPY_CODECS[span.codec]
        else:
            ov = _x264_stream(out, vs)
        if span.rotation:
            ov.set_display_rotation(span.rotation)
        oa = out.add_stream("aac", rate=rate, layout="stereo")
        oa.bit_rate = AAC_BITRATE
        audio_packets = _encode_audio(oa, audio, rate, span.start)
        video_packets = _copy_packets(inp, vs, ov) if copy else _encode_video(inp, vs, ov)
        _interleave(out, video_packets, audio_packets)


def _x264_stream(out, vs):
    rate = vs.average_rate or vs.guessed_rate or Fraction(25)
    ov = out.add_stream("libx264", rate=rate)
    cc = vs.codec_context
    ov.width, ov.height = cc.width - cc.width % 2, cc.height - cc.height % 2  # 4:2:0 needs even sizes
    ov.pix_fmt = "yuv420p"
    ov.time_base = vs.time_base  # keep the input's timestamps: variable frame rate stays as it was
    ov.codec_context.time_base = vs.time_base
    # ultrafast: re-encoding only happens for codecs MP4 does not take, and render must stay faster than
    # real time on two cores (veryfast managed 0.6x real time at 720p here, ultrafast 1.3x under load)
    ov.options = {"crf": "20", "preset": "ultrafast"}
    if vs.sample_aspect_ratio:
        ov.codec_context.sample_aspect_ratio = vs.sample_aspect_ratio
    return ov


def _copy_packets(inp, vs, ov):
    for packet in inp.demux(vs):
        if packet.dts is None and packet.pts is None:
            continue  # the demuxer's flush packet
        packet.stream = ov
        yield packet


def _encode_video(inp, vs, ov):
    vs.thread_type = "AUTO"
    last_pts = None
    for frame in inp.decode(vs):
        if frame.pts is None or (last_pts is not None and frame.pts <= last_pts):
            continue  # x264 refuses repeated timestamps; a duplicate frame adds nothing
        last_pts = frame.pts
        f = frame.reformat(width=ov.width, height=ov.height, format="yuv420p")
        f.pts, f.time_base = frame.pts, vs.time_base
        yield from ov.encode(f)
    yield from ov.encode()


def _encode_audio(oa, audio: np.ndarray, rate: int, start: float) -> list:
    """All AAC packets, timed from the first video frame (the AAC encoder wants 1024-sample frames)."""
    offset = int(round(start * rate))
    planar = np.ascontiguousarray(audio.T)
    packets = []
    for i in range(0, audio.shape[0], AAC_FRAME):
        frame = av.AudioFrame.from_ndarray(planar[:, i:i + AAC_FRAME], format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, offset + i, Fraction(1, rate)
        packets.extend(oa.encode(frame))
    packets.extend(oa.encode(None))
    return packets


def _interleave(out, video_packets, audio_packets: list) -> None:
    """Mux video and audio in time order, so players need no large buffers."""
    ai = 0

    def t(p) -> float:
        ts = p.dts if p.dts is not None else p.pts
        return float(ts * p.time_base) if ts is not None else 0.0

    for vp in video_packets:
        vt = t(vp)
        while ai < len(audio_packets) and t(audio_packets[ai]) <= vt:
            out.mux(audio_packets[ai])
            ai += 1
        out.mux(vp)
    for ap in audio_packets[ai:]:
        out.mux(ap)
