"""Settings of the music generators (the arranger and the transformer)."""

from __future__ import annotations

from dataclasses import dataclass

from cuecast.models.common import check

BACKENDS = ("arranger", "transformer")
SEED_MAX = 2**32 - 1  # what numpy, torch and random all take as a seed


@dataclass
class GeneratorConfig:
    backend: str = "transformer"  # EMSYNC's generator; "arranger" is the light, rule-based one
    seed: int = 0
    device: str = "auto"
    # transformer sampling. EMSYNC samples its 11-layer model at 1.3 / 0.6; the small CPU model here plays
    # near-atonal clusters at 1.3 (pitch-in-scale 0.73 on the grid) and stays in key at 1.0 (0.95, as the corpus)
    temperature: float = 1.0
    top_p: float = 0.6
    weights: str = ""  # empty: the shipped models/weights/music_transformer.pt
    max_polyphony: int = 16
    chord_bias: float = 3.0  # transformer: logit bonus of CHORD where a boundary is (the conductor's help)
    max_hold_beats: float = 4.0  # transformer: the guard closes a note held this long
    guidance: float = 1.0  # transformer: classifier-free guidance on valence and arousal (1 = off); one batch of two streams
    mode_steer: float = 3.0  # transformer: logit bias towards the mode valence asks for (0 = off; see steer.py)
    # transformer: logit bias towards the note density arousal asks for (0 = off). 5 since session 6: at 3 the
    # model's own busy texture held calm and middle scenes at 13-17 notes/s, twice what they ask for
    density_steer: float = 5.0
    velocity_steer: float = 1.0  # transformer: logit bias towards the loudness arousal asks for (0 = off)
    balance_steer: float = 1.0  # transformer: logit bias towards every part having its share of the notes (0 = off)
    register_steer: float = 1.0  # transformer: logit tilt of melody, chords and pad up when excited, down when calm (0 = off)
    # transformer: the section's notes keep to the key its key token chose, as the model's own scale prior
    # added this many times more (0 = off; see steer.py). 2 since session 9: at 1 a fast-cut passage's new chords
    # drifted off its key and its mode read major on half the seeds (music model card, "Session 9")
    key_steer: float = 2.0
    boundary_steer: float = 3.0  # transformer: the conductor's help at a cut: prepared, accented, a new harmony after

    def validate(self, key: str) -> None:
        check(self.backend in BACKENDS, f"{key}.backend", f"must be one of {', '.join(BACKENDS)}", self.backend)
        check(0 <= self.seed <= SEED_MAX, f"{key}.seed", f"must be in 0..{SEED_MAX}", self.seed)
        check(0.05 <= self.temperature <= 5.0, f"{key}.temperature", "must be in 0.05..5", self.temperature)
        check(0.0 < self.top_p <= 1.0, f"{key}.top_p", "must be in (0, 1]", self.top_p)
        check(1 <= self.max_polyphony <= 64, f"{key}.max_polyphony", "must be in 1..64", self.max_polyphony)
        check(0.0 <= self.chord_bias <= 20.0, f"{key}.chord_bias", "must be in 0..20", self.chord_bias)
        check(0.5 <= self.max_hold_beats <= 16.0, f"{key}.max_hold_beats", "must be in 0.5..16", self.max_hold_beats)
        check(0.0 <= self.guidance <= 10.0, f"{key}.guidance", "must be in 0..10", self.guidance)
        check(0.0 <= self.mode_steer <= 10.0, f"{key}.mode_steer", "must be in 0..10", self.mode_steer)
        check(0.0 <= self.density_steer <= 10.0, f"{key}.density_steer", "must be in 0..10", self.density_steer)
        check(0.0 <= self.velocity_steer <= 10.0, f"{key}.velocity_steer", "must be in 0..10", self.velocity_steer)
        check(0.0 <= self.balance_steer <= 10.0, f"{key}.balance_steer", "must be in 0..10", self.balance_steer)
        check(0.0 <= self.register_steer <= 10.0, f"{key}.register_steer", "must be in 0..10", self.register_steer)
        check(0.0 <= self.key_steer <= 10.0, f"{key}.key_steer", "must be in 0..10", self.key_steer)
        check(0.0 <= self.boundary_steer <= 10.0, f"{key}.boundary_steer", "must be in 0..10", self.boundary_steer)
