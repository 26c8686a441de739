"""`cuecast compose`: the generator without video, for listening tests and evaluation."""

from __future__ import annotations

from pathlib import Path

from cuecast.engine.commands.common import add_engine_options, config_from_args
from cuecast.engine.compose import compose
from cuecast.engine.errors import UserError
from cuecast.streams.files import NotRegularFileError, output_target
from cuecast.streams.midi_file import MidiFileError, write_midi

HELP = "compose music for a given valence/arousal and cut times, without video"
DESCRIPTION = """\
Compose music at a fixed emotion, with chords landing on the given cut times.

valence: -1 (sad, tense) .. 1 (happy); arousal: -1 (calm) .. 1 (excited).
The output's extension says what to write: .mid (Standard MIDI File) or .wav (the music played by a
General MIDI SoundFont synth, FluidSynth; output.soundfont picks the SoundFont).

examples:
  cuecast compose --valence 0.7 --arousal 0.5 --seconds 30 -o happy.mid
  cuecast compose --valence 0.7 --arousal 0.5 --seconds 30 -o happy.wav
  cuecast compose --valence -0.6 --arousal -0.4 --seconds 20 --cuts 4,9.5,15 --seed 3 -o sad.mid"""

FORMATS = (".mid", ".midi", ".wav")


def _unit(name: str):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise UserError(f"--{name} must be a number in -1..1 (got {text!r})") from None
        if not -1.0 <= v <= 1.0:
            raise UserError(f"--{name} must be in -1..1 (got {v})")
        return v
    return parse


def add_arguments(p) -> None:
    p.add_argument("--valence", required=True, metavar="V", help="-1 .. 1")
    p.add_argument("--arousal", required=True, metavar="A", help="-1 .. 1")
    p.add_argument("--seconds", required=True, metavar="S", help="length of the music in seconds")
    p.add_argument("--cuts", default="", metavar="T1,T2,...", help="cut times in seconds, comma-separated")
    p.add_argument("-o", "--output", required=True, metavar="FILE.mid|FILE.wav",
                   help="file to write: .mid for MIDI, .wav for audio (FluidSynth)")
    add_engine_options(p, lookahead=False)


def _seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        raise UserError(f"--seconds must be a number (got {text!r})") from None
    if not 0.5 <= s <= 3600:
        raise UserError(f"--seconds must be in 0.5..3600 (got {s})")
    return s


def _cuts(text: str, seconds: float) -> list[float]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            t = float(part)
        except ValueError:
            raise UserError(f"--cuts must be comma-separated seconds (bad value {part!r})") from None
        if not 0.0 < t < seconds:
            raise UserError(f"cut at {t} s is outside the music (0..{seconds} s)")
        out.append(t)
    return sorted(out)


def run(args) -> int:
    valence, arousal = _unit("valence")(args.valence), _unit("arousal")(args.arousal)
    seconds = _seconds(args.seconds)
    cuts = _cuts(args.cuts, seconds)
    out = Path(args.output)
    try:  # what the path is comes first: /dev/null has no suffix, and is refused as a device, not as a name
        output_target(out)
    except NotRegularFileError as e:
        raise UserError(f"cannot write {out}: {e.strerror}") from None
    if out.suffix.lower() not in FORMATS:
        raise UserError(f"cannot tell what to write to {out}: end the name with .mid (MIDI) or .wav (audio)")
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: folder {out.parent} does not exist")
    cfg = config_from_args(args)
    notes, timeline = compose(cfg, valence, arousal, seconds, cuts)
    if out.suffix.lower() == ".wav":
        _write_wav(out, notes, cfg, seconds)
    else:
        try:
            write_midi(out, notes, timeline.tempo, cfg.instrument_map(), seconds)
        except MidiFileError as e:
            raise UserError(str(e)) from None
    on_cut = sum(any(abs(c - t) <= 0.1 for t in timeline.chords) for c in cuts)
    print(f"wrote {out}: {seconds:.1f} s, {len(notes)} notes, {len(timeline.chords)} chord onsets"
          + (f", {on_cut}/{len(cuts)} cuts with a chord" if cuts else ""))
    return 0


def _write_wav(out: Path, notes, cfg, seconds: float) -> None:
    from cuecast.streams.audio_render import AudioRenderError, SynthUnavailable, render_audio  # noqa: PLC0415

    try:
        render_audio(notes, cfg.instrument_map(), seconds, out, sample_rate=cfg.output.sample_rate,
                     soundfont=cfg.output.soundfont, gain=cfg.output.gain)
    except (SynthUnavailable, AudioRenderError) as e:
        raise UserError(f"cannot write {out}: {e}") from None
