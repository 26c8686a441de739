"""Live `--video-out` wiring: the soundtrack synth beside the MIDI sinks, the source's pictures into the writer.

The StreamingSynth is one more NoteSink next to the sender, so the audio in the video is made from exactly
the notes the MIDI outputs play; the VideoOut takes every picture (and the input's sound) from the source
before the live queue can drop it for a slow analysis, and writes it when its music plays.
"""

from __future__ import annotations

import sys
from typing import Callable

from cuecast.engine.config import Config
from cuecast.engine.errors import UserError
from cuecast.streams.audio_render import AudioRenderError, StreamingSynth, SynthUnavailable
from cuecast.streams.video_out import EncoderSettings, VideoOut, VideoOutError, parse_target
from cuecast.types import AudioChunk, Frame, InputSound

ZERO_LATENCY_BELOW_S = 0.5  # with less lookahead than this the encoder's own delay would show: x264 zerolatency


def check_target(text: str) -> None:
    """A malformed --video-out is a user error before anything starts."""
    try:
        parse_target(text)
    except VideoOutError as e:
        raise UserError(str(e)) from None


def encoder_settings(cfg: Config) -> EncoderSettings:
    """The config's encoder; x264's zerolatency below half a second of lookahead (streams always have it)."""
    c = cfg.video_out
    tune = "zerolatency" if cfg.conductor.lookahead_s < ZERO_LATENCY_BELOW_S else ""
    return EncoderSettings(preset=c.preset, video_kbps=c.video_kbps, keyframe_s=c.keyframe_s,
                           audio_kbps=c.audio_kbps, tune=tune)


class LiveVideoOut:
    """--video-out for one live run: `sink` joins the engine's sinks, `tap` sees every source item."""

    def __init__(self, cfg: Config, target: str, clock, fps: float, mix_input: float | None = None,
                 say: Callable[[str], None] | None = None):
        self.target = target
        try:
            self.sink = StreamingSynth(cfg.instrument_map(), cfg.video_out.sample_rate, cfg.output.soundfont,
                                       cfg.output.gain)
        except SynthUnavailable as e:
            raise UserError(f"--video-out needs the software synth for its soundtrack: {e}") from None
        except AudioRenderError as e:
            raise UserError(str(e)) from None
        mix = cfg.video_out.mix_input_audio if mix_input is None else mix_input
        try:
            self.video = VideoOut(target, self.sink, clock, cfg.video_out.sample_rate, encoder_settings(cfg), fps=fps,
                                  mix_input=mix, say=say or _warn)
        except VideoOutError as e:
            self.sink.release()
            raise UserError(str(e)) from None

    def tap(self, item: Frame | AudioChunk | InputSound) -> None:
        """Every item the source decodes (its thread): pictures to the encoder, the sound as decoded to the mix
        (the analysis's mono blocks are not for listening)."""
        if isinstance(item, Frame):
            self.video.picture(item.picture, item.t)
        elif isinstance(item, InputSound):
            self.video.input_sound(item.frame, item.t)

    def close(self, end: float | None) -> None:
        """end: the input's end when it ran out; None when stopped (the output ends where the music stopped)."""
        try:
            self.video.close(end)
        except VideoOutError as e:
            _warn(str(e))
        finally:
            self.sink.release()

    def summary(self) -> str:
        s = self.video.status
        text = f"video out: {s.written} pictures written, {s.dropped} dropped"
        if s.late:
            text += f", {s.late} late"
        return text + f" -> {self.target}" + (f" ({s.error})" if s.error else "")


def _warn(message: str) -> None:
    print(f"cuecast: warning: {message}", file=sys.stderr, flush=True)
