"""The picture with its soundtrack, out: `cuecast live --video-out` and the render's soundtrack.mp4.

One writer (MediaWriter) puts an H.264 picture (encoded here, or copied packet for packet) and an AAC
soundtrack into a file (.mp4, .mkv, .ts) or a stream (rtmp:// as FLV, srt:// and udp:// as MPEG-TS).

Live (VideoOut), the input's pictures are encoded as they arrive and held back as packets (small, unlike
raw pictures) until the music for their media time plays: exactly the lookahead L behind the input, on
the clock the MIDI sender keeps. The soundtrack is rendered by FluidSynth in media time from the notes
the MIDI outputs get (StreamingSynth), one AAC frame at a time as the playhead reaches it, so a chord on a
cut sits on the cut's picture (FluidSynth starts a note within 64 samples, 1.5 ms). If the encoder cannot
keep up, pictures are dropped before encoding and the user is told at once: the delay never grows.
"""

from __future__ import annotations

import collections
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import av
import numpy as np

from cuecast.streams.files import FILE_MODE, output_target

AAC_FRAME = 1024
VIDEO_TIME_BASE = Fraction(1, 90000)  # MPEG's clock: every container takes it, any frame rate fits it
FILE_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts"}
URL_FORMATS = {"rtmp": "flv", "rtmps": "flv", "srt": "mpegts", "udp": "mpegts"}
UDP_PACKET = 1316  # 7 TS packets: fits an Ethernet MTU, what every IPTV receiver expects


class VideoOutError(Exception):
    """The target cannot be opened or written (shown as a one-line `cuecast: error:`)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the output goes: a file path or a URL, the container format, and muxer options."""

    url: str
    format: str
    is_file: bool
    options: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.url


def parse_target(text: str) -> Target:
    """`out.mp4` / `out.mkv` / `out.ts`, `rtmp://…`, `srt://…`, `udp://HOST:PORT`; VideoOutError otherwise."""
    scheme, sep, _ = text.partition("://")
    if sep:
        fmt = URL_FORMATS.get(scheme.lower())
        if fmt is None:
            raise VideoOutError(f"--video-out {text!r}: streams go to rtmp://, srt:// or udp:// URLs")
        url = text
        if scheme.lower() == "udp" and "pkt_size=" not in url:
            url += ("&" if "?" in url else "?") + f"pkt_size={UDP_PACKET}"
        # FLV to an ingest server: no seeking back to patch the header when the stream ends
        options = {"flvflags": "no_duration_filesize"} if fmt == "flv" else {}
        return Target(url, fmt, False, options)
    fmt = FILE_FORMATS.get(Path(text).suffix.lower())
    if fmt is None:
        raise VideoOutError(f"--video-out {text!r}: give a file ending in .mp4, .mkv or .ts, "
                            "or an rtmp://, srt:// or udp:// URL")
    return Target(text, fmt, True)


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    """H.264 and AAC settings. The live defaults are what platform ingests ask for: yuv420p, even sizes,
    a keyframe every 2 s, constant bitrate with a one-second buffer, AAC stereo."""

    preset: str = "veryfast"
    video_kbps: int = 0  # 0: from the picture size and rate (auto_kbps)
    crf: int | None = None  # quality mode instead of a bitrate (the offline render)
    keyframe_s: float = 2.0  # 0: the encoder decides
    cbr: bool = True  # constant bitrate (padded), as ingest servers want; False only caps it
    bframes: int | None = 0  # none live: a picture's packet is ready as soon as it is encoded; None: x264's
    tune: str = ""  # "zerolatency": no lookahead hides the encoder's own delay, or a stream (see VideoOut)
    audio_kbps: int = 160

    def video_options(self, width: int, height: int, fps: float) -> tuple[int, dict]:
        """(bit_rate, libx264 options)."""
        opts = {"preset": self.preset}
        if self.bframes is not None:
            opts["bf"] = str(self.bframes)
        if self.tune:
            opts["tune"] = self.tune
        if self.keyframe_s > 0:
            g = str(max(1, round(self.keyframe_s * fps)))
            opts.update(g=g, keyint_min=g, sc_threshold="0")  # a steady GOP: ingest servers cut segments on it
        if self.crf is not None:
            opts["crf"] = str(self.crf)
            return 0, opts
        kbps = self.video_kbps or auto_kbps(width, height, fps)
        opts.update(maxrate=f"{kbps}k", bufsize=f"{kbps}k")
        if self.cbr:
            opts["x264-params"] = "nal-hrd=cbr:force-cfr=0"
        return kbps * 1000, opts


def auto_kbps(width: int, height: int, fps: float) -> int:
    """About 0.1 bit per pixel: 720p30 2.8 Mb/s, 1080p30 6 Mb/s (capped at 6 Mb/s, what Twitch takes)."""
    return int(min(6000, max(300, 0.1 * width * height * max(1.0, fps) / 1000)))


def even_size(width: int, height: int) -> tuple[int, int]:
    return max(2, width - width % 2), max(2, height - height % 2)  # 4:2:0 needs even sizes


class MediaWriter:
    """One container with one video stream (H.264 encoded here, or packets copied) and one AAC stream.

    Streams are added first (video, then audio), then pictures/packets and audio go in, in roughly time
    order (the muxer interleaves what is close); close() flushes the encoders and writes the trailer.
    """

    def __init__(self, target: Target, sample_rate: int, settings: EncoderSettings):
        self.target, self.rate, self.settings = target, int(sample_rate), settings
        try:
            self.container = av.open(target.url, "w", format=target.format, options=dict(target.options))
        except (av.error.FFmpegError, OSError) as e:
            raise VideoOutError(f"cannot open {target.name}: {_reason(e)}") from None
        self.video = None
        self.audio = None
        self._audio_pts = 0
        self._fifo = np.zeros((0, 2), np.float32)
        self._video_flushed = self._audio_flushed = False
        self._closed = False

    # ---- streams ----
    def add_encoded_video(self, width: int, height: int, fps: float, rotation: int = 0,
                          sample_aspect_ratio=None, time_base: Fraction = VIDEO_TIME_BASE) -> None:
        width, height = even_size(width, height)
        fps = fps if fps and math.isfinite(fps) and fps > 0 else 30.0
        vs = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.time_base = vs.codec_context.time_base = time_base  # frames carry their own media time (VFR)
        bit_rate, vs.options = self.settings.video_options(width, height, fps)
        if bit_rate:
            vs.bit_rate = bit_rate
        if sample_aspect_ratio:
            vs.codec_context.sample_aspect_ratio = sample_aspect_ratio
        if rotation:
            vs.set_display_rotation(rotation)
        self.video = vs

    def add_copied_video(self, template, codec_tag: str | None = None, rotation: int = 0) -> None:
        vs = self.container.add_stream_from_template(template)
        if codec_tag:
            vs.codec_context.codec_tag = codec_tag
        if rotation:
            vs.set_display_rotation(rotation)
        self.video = vs

    def add_audio(self, start: float = 0.0) -> None:
        """The AAC stream; its first sample plays at `start` seconds of the output's timeline."""
        oa = self.container.add_stream("aac", rate=self.rate, layout="stereo")
        oa.bit_rate = self.settings.audio_kbps * 1000
        # FFmpeg's default AAC search ("twoloop") costs 5x more; at these bitrates "fast" sounds the same
        oa.options = {"aac_coder": "fast"}
        self.audio = oa
        self._audio_pts = int(round(start * self.rate))

    # ---- encoding (any thread, one per stream) ----
    def encode_picture(self, picture: av.VideoFrame, t: float) -> list:
        """Packets for one picture shown at `t` seconds (resized to the stream, yuv420p)."""
        vs = self.video
        f = picture
        if f.width != vs.width or f.height != vs.height or f.format.name != "yuv420p":
            f = picture.reformat(width=vs.width, height=vs.height, format="yuv420p")
        f.pts, f.time_base = int(round(t / vs.time_base)), vs.time_base
        return vs.encode(f)

    def flush_video(self) -> list:
        """The encoder's last packets (once; later calls give none)."""
        if self.video is None or self._video_flushed or not self.video.codec_context.is_encoder:
            return []
        self._video_flushed = True
        return list(self.video.encode(None))

    def encode_audio(self, block: np.ndarray) -> list:
        """Packets for the next (n, 2) float32 samples, right after the ones before."""
        self._fifo = np.concatenate([self._fifo, block.astype(np.float32, copy=False)]) if len(self._fifo) else block
        out = []
        n = len(self._fifo) - len(self._fifo) % AAC_FRAME
        if n:
            out = self._encode_frames(self._fifo[:n])
            self._fifo = self._fifo[n:]
        return out

    def flush_audio(self) -> list:
        if self.audio is None or self._audio_flushed:
            return []
        self._audio_flushed = True
        out = self._encode_frames(self._fifo) if len(self._fifo) else []
        self._fifo = np.zeros((0, 2), np.float32)
        return out + list(self.audio.encode(None))

    def _encode_frames(self, samples: np.ndarray) -> list:
        planar = np.ascontiguousarray(np.clip(samples, -1.0, 1.0).T)
        out = []
        for i in range(0, planar.shape[1], AAC_FRAME):
            frame = av.AudioFrame.from_ndarray(planar[:, i:i + AAC_FRAME], format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = self.rate, self._audio_pts, Fraction(1, self.rate)
            self._audio_pts += frame.samples
            out.extend(self.audio.encode(frame))
        return out

    # ---- muxing (one thread) ----
    def mux(self, packets: Iterable) -> None:
        try:
            for p in packets:
                self.container.mux(p)
        except (av.error.FFmpegError, OSError) as e:
            raise VideoOutError(f"cannot write {self.target.name}: {_reason(e)}") from None

    def close(self) -> None:
        """Flush both encoders and finish the container (a playable file); idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.video is not None and self.audio is not None:
                self.mux(self.flush_audio())
                self.mux(self.flush_video())
        finally:
            try:
                self.container.close()
            except (av.error.FFmpegError, OSError) as e:
                raise VideoOutError(f"cannot finish {self.target.name}: {_reason(e)}") from None


def _seconds(ts: int | None, time_base) -> float:
    return float(ts * time_base) if ts is not None else 0.0


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e)


# ---- live ------------------------------------------------------------------------------------------


class InputAudio:
    """The input's own sound as decoded, resampled (PyAV's AudioResampler) to the output's rate and channels
    and kept by sample position in media time until the soundtrack takes it. Mono sounds on both sides at
    its own level; stereo keeps its sides; more channels are mixed down to stereo."""

    def __init__(self, rate: int):
        self.rate = rate
        self._resampler = None
        self._from: tuple | None = None  # (format, layout, rate) the resampler takes
        self._next: int | None = None  # sample position where the next resampled samples go
        self._expect_t: float | None = None
        self._parts: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self._lock = threading.Lock()

    def add(self, frame, t: float) -> None:
        """An av.AudioFrame whose first sample plays at media time t."""
        if not frame.samples:
            return
        kind = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._resampler is None or kind != self._from or self._expect_t is None \
                or abs(t - self._expect_t) > 0.05:  # a gap (a loop, a stall) or a new kind: start again at its time
            layout = "mono" if len(frame.layout.channels) == 1 else "stereo"
            self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=self.rate)
            self._from = kind
            self._next = int(round(t * self.rate))
        self._expect_t = t + frame.samples / frame.sample_rate
        for r in self._resampler.resample(frame):
            data = r.to_ndarray().T.astype(np.float32, copy=False)  # (n, channels)
            if data.shape[1] == 1:
                data = np.repeat(data, 2, axis=1)  # mono: the same level on both sides
            with self._lock:
                self._parts.append((self._next, np.ascontiguousarray(data)))
            self._next += len(data)

    def take(self, pos: int, n: int) -> np.ndarray:
        """(n, 2) samples from sample position pos (zeros where nothing came); earlier samples are dropped."""
        out = np.zeros((n, 2), np.float32)
        with self._lock:
            while self._parts and self._parts[0][0] + len(self._parts[0][1]) <= pos:
                self._parts.popleft()
            for at, data in self._parts:
                if at >= pos + n:
                    break
                lo, hi = max(pos, at), min(pos + n, at + len(data))
                if hi > lo:
                    out[lo - pos:hi - pos] = data[lo - at:hi - at]
        return out


@dataclass
class VideoOutStatus:
    encoded: int = 0  # pictures encoded
    written: int = 0  # pictures in the output (encoded ones past the end, when stopped, are not)
    dropped: int = 0  # pictures dropped because the encoder fell behind
    late: int = 0  # stream packets that went out more than a frame after their time
    error: str = ""


class VideoOut:
    """`--video-out`: pictures and the input's sound in as they arrive, out with the soundtrack L seconds later.

    soundtrack: renders the music in media time (StreamingSynth: `render(n)` gives the next n samples
    from media time zero on). clock: the live clock (`started`, `media_now()`: the media time playing now,
    the lookahead behind the input). mix_input: level of the input's own sound under the music (0: the
    soundtrack replaces it). say: called with a one-line message when something needs the user's attention
    (falling behind, a lost stream). picture() and input_sound() never block: the source's thread calls them.
    """

    def __init__(self, target: Target | str, soundtrack, clock, sample_rate: int,
                 settings: EncoderSettings | None = None, fps: float = 0.0, mix_input: float = 0.0,
                 say: Callable[[str], None] = lambda msg: None, queue_s: float = 0.5):
        self.target = parse_target(target) if isinstance(target, str) else target
        self.soundtrack, self.clock = soundtrack, clock
        self.rate = int(sample_rate)
        self.settings = settings or EncoderSettings()
        if not self.target.is_file and not self.settings.tune:
            # x264 holds each picture back for a number of pictures (its lookahead, its frame threads): when it
            # falls behind, that is more and more seconds, and a stream's pictures would come late however many
            # are dropped. Zerolatency holds none, so dropping keeps the delay. (A file plays by its timestamps
            # and keeps the better compression.)
            self.settings = replace(self.settings, tune="zerolatency")
        self.fps = fps if fps and fps > 0 else 30.0
        self.mix_input = float(mix_input)
        self.say = say
        self.status = VideoOutStatus()
        self.input = InputAudio(self.rate) if self.mix_input > 0 else None
        self._part = _part_file(self.target) if self.target.is_file else None  # a bad folder fails now
        self.writer = MediaWriter(replace(self.target, url=str(self._part)) if self._part else self.target,
                                  self.rate, self.settings)
        self._max_waiting = max(2, int(round(queue_s * self.fps)))
        self._cond = threading.Condition()
        self._pictures: collections.deque = collections.deque()  # (picture, media time) for the encoder
        self._packets: collections.deque = collections.deque()  # (media time, packet) held back until then
        self._threads: list[threading.Thread] = []
        self._end: float | None = None  # media time where the output ends (set by close)
        self._encoder_done = False
        self._stop_now = False
        self._audio_pos = 0  # soundtrack samples written, from media time zero
        self._warned = False
        self._closed = False

    # ---- input side (the source's thread) ----
    def picture(self, picture, t: float) -> None:
        if picture is None or self._end is not None or self._stop_now:
            return
        with self._cond:
            if not self._threads:
                self._start(picture)
            if len(self._pictures) >= self._max_waiting:
                self._pictures.popleft()
                self._dropped()
            self._pictures.append((picture, t))
            self._cond.notify_all()

    def input_sound(self, frame, t: float) -> None:
        """The input's sound as decoded (an av.AudioFrame starting at media time t), for the mix."""
        if self.input is not None and self._end is None:
            self.input.add(frame, t)

    def _start(self, first) -> None:
        self.writer.add_encoded_video(first.width, first.height, self.fps,
                                      rotation=int(getattr(first, "rotation", 0) or 0))
        self.writer.add_audio()
        self._threads = [threading.Thread(target=self._encode_loop, name="cuecast-video-encode", daemon=True),
                         threading.Thread(target=self._mux_loop, name="cuecast-video-mux", daemon=True)]
        for th in self._threads:
            th.start()

    def _dropped(self) -> None:
        self.status.dropped += 1
        if not self._warned:
            self._warned = True
            self.say(f"video out: the encoder falls behind real time; dropping pictures so the delay stays "
                     f"(try a lower bitrate, a smaller picture or a faster preset than {self.settings.preset})")

    # ---- encoder thread ----
    def _encode_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._pictures and self._end is None and not self._stop_now:
                        self._cond.wait(0.1)
                    if self._stop_now or not self._pictures:
                        break
                    picture, t = self._pictures.popleft()
                if self._end is not None and t >= self._end:
                    continue
                if self._due(t):
                    self._dropped()  # it would go out late: better the next one on time
                    continue
                self._hold(self.writer.encode_picture(picture, t))
                self.status.encoded += 1
            if not self._stop_now:
                self._hold(self.writer.flush_video())
        except Exception as e:  # reported; the music goes on
            self._fail(f"video out: encoding failed: {e}")
        finally:
            with self._cond:
                self._encoder_done = True
                self._cond.notify_all()

    def _due(self, t: float) -> bool:
        """A stream's picture whose time has come before it was encoded (a file plays by timestamps)."""
        return not self.target.is_file and self.clock.started and self.clock.media_now() >= t

    def _hold(self, packets: list) -> None:
        """Keep packets until their media time plays (their decode time: never after their picture)."""
        if not packets:
            return
        with self._cond:
            for p in packets:
                self._packets.append((_seconds(p.dts if p.dts is not None else p.pts, p.time_base),
                                      _seconds(p.pts, p.time_base), p))
            self._cond.notify_all()

    # ---- mux thread: the soundtrack and the held-back pictures, each at its time ----
    # (a held-back packet is (decode time: when it is sent, presentation time: where it shows, packet))
    def _mux_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    if self._stop_now or (self._encoder_done and not self._packets and self._audio_done()):
                        return
                now = self._playhead()
                self._write_audio_until(now)
                self._write_pictures_until(now)
                with self._cond:
                    self._cond.wait(self._wait(now))
        except Exception as e:
            self._fail(f"video out: {e}")

    def _playhead(self) -> float:
        """The media time playing now. At the end of a file everything is known: all of it can be written."""
        if self._end is not None and self.target.is_file:
            return math.inf
        return self.clock.media_now() if self.clock.started else -math.inf

    def _end_sample(self) -> float:
        return math.inf if self._end is None else int(round(self._end * self.rate))

    def _audio_done(self) -> bool:
        return self._audio_pos >= self._end_sample()

    def _write_audio_until(self, now: float) -> None:
        if now == -math.inf:
            return
        upto = min(self._end_sample(), math.floor(now * self.rate) if math.isfinite(now) else math.inf)
        if self._end is None:
            upto -= upto % AAC_FRAME  # while playing: whole AAC frames, each once the playhead has passed it
        n = int(upto - self._audio_pos) if math.isfinite(upto) else 0
        if n <= 0:
            return
        block = self.soundtrack.render(n) if self.soundtrack is not None else np.zeros((n, 2), np.float32)
        if self.input is not None:
            block = block + self.mix_input * self.input.take(self._audio_pos, n)
        self._audio_pos += n
        self.writer.mux(self.writer.encode_audio(block))

    def _write_pictures_until(self, now: float) -> None:
        while True:
            with self._cond:
                if not self._packets:
                    return
                t, shown, packet = self._packets[0]
                if self._end is not None and shown >= self._end:
                    self._packets.popleft()  # past where the music stopped: never written, so not waited for
                    continue
                if t > now:
                    return
                self._packets.popleft()
            if not self.target.is_file and math.isfinite(now) and now - t > 1.0 / self.fps:
                self.status.late += 1  # a stream's receiver sees the picture late (a file plays by timestamps)
            self.writer.mux([packet])
            self.status.written += 1  # one packet per picture: no B-frames

    def _wait(self, now: float) -> float:
        """Seconds until the next AAC frame or held-back picture is due (at most 20 ms)."""
        if not math.isfinite(now):
            return 0.02
        due = (self._audio_pos + AAC_FRAME) / self.rate
        if self._packets:
            due = min(due, self._packets[0][0])
        return max(0.0005, min(0.02, due - now))

    def _fail(self, message: str) -> None:
        if not self.status.error:
            self.status.error = message
            self.say(message)
        with self._cond:
            self._stop_now = True
            self._pictures.clear()
            self._cond.notify_all()

    # ---- the end ----
    def close(self, end: float | None = None) -> None:
        """Write up to media time `end` (the input's end; None: where the music is now, after a stop) and
        finish the container, so the file plays. Safe from any way out, more than once."""
        if self._closed:
            return
        with self._cond:
            if end is None:
                end = max(0.0, self.clock.media_now()) if self.clock.started else 0.0
            self._end = end
            self._cond.notify_all()
        try:
            for th in self._threads:
                th.join()
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, still finish the file
            self._fail("video out: stopped before the end")
            for th in self._threads:
                th.join(2.0)
        finally:
            self._closed = True
            try:
                self.writer.close()
            finally:
                self._publish()

    def _publish(self) -> None:
        """A file takes its name once finished (something was written), so a file of that name always plays."""
        if self._part is None:
            return
        try:
            if self.status.written:
                os.chmod(self._part, FILE_MODE)
                os.replace(self._part, output_target(self.target.url))
        except OSError as e:
            raise VideoOutError(f"cannot write {self.target.name}: {e.strerror or e}") from None
        finally:
            self._part.unlink(missing_ok=True)


def _part_file(target: Target) -> Path:
    """A hidden file beside the target to write to (a symlink is written through; a device is refused)."""
    try:
        path = output_target(target.url)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=str(path.parent))
    except OSError as e:
        raise VideoOutError(f"cannot write {target.name}: {e.strerror or e}") from None
    os.close(fd)
    return Path(tmp)
