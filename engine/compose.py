"""Drive the generator without video: a fixed emotion and a list of cut times (listening tests, evaluation)."""

from __future__ import annotations

import dataclasses

from cuecast.engine.conductor import Conductor
from cuecast.engine.config import Config
from cuecast.engine.stages import make_generator
from cuecast.models.music.metrics import chord_onsets
from cuecast.models.emotion.va import probs_from_va
from cuecast.streams.midi_file import MidiFileSink
from cuecast.types import Boundary, EmotionWindow, Note, Timeline


def compose(cfg: Config, valence: float, arousal: float, seconds: float, cuts: list[float] = (),
            seed: int | None = None) -> tuple[list[Note], Timeline]:
    """Notes for `seconds` of music at a fixed emotion with chords landing on `cuts` (all known ahead)."""
    gen_cfg = cfg.generator if seed is None else dataclasses.replace(cfg.generator, seed=seed)
    sink = MidiFileSink()
    conductor = Conductor(cfg.conductor, make_generator(gen_cfg), sink)
    window = EmotionWindow(0.0, seconds, tuple(float(p) for p in probs_from_va(valence, arousal)), valence, arousal, ("requested",))
    conductor.add_emotion(window)
    boundaries = [Boundary(t=c, kind="hard", source="requested") for c in sorted(cuts)]
    for b in boundaries:
        conductor.add_boundary(b)
    conductor.finish(seconds)
    sink.close()
    notes = list(sink.notes)
    timeline = Timeline(duration=seconds, boundaries=boundaries, emotion=[window],
                        tempo=sink.tempo_map, chords=chord_onsets(notes))
    return notes, timeline


def compose_notes(cfg: Config, valence: float, arousal: float, seconds: float, cuts: list[float] = (),
                  seed: int | None = None) -> list[Note]:
    return compose(cfg, valence, arousal, seconds, cuts, seed)[0]
