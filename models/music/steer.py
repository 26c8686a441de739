"""Emotion steering at sampling time: the conductor's valence and arousal as soft biases on the logits.

The transformer takes valence and arousal as inputs, but a small model trained for an hour or two on a CPU
follows them loosely: once its context has a mode and a texture it keeps them. Steering keeps the music on
the emotion the picture asks for while every token stays the model's choice (biases, never edits):

- mode: valence is the music's major-minor key score (EMSYNC's label: best major Krumhansl-Kessler
  correlation minus best minor, of the pitch-class histogram). For the model's own recent notes,
  steering asks which pitch class, played next, would raise that score and which would lower it (the
  score's finite-difference gradient), and favours the ones that move it the way valence asks, in
  proportion to |valence|: classifier guidance with the labelling function as the classifier. It needs no
  tonic (relative keys share their notes, so a tonic estimate would often steer the wrong scale);
- density: the note-on rate of the last seconds against a target rate from arousal (EMSYNC's arousal is
  note density); note-ons get a bias of log(target / rate), bounded, so a sparse stream is nudged to
  play and a dense one to wait. Pitched notes are held to a share of the target of their own, so a
  drum groove alone cannot meet it: a soundtrack needs harmony;
- loudness: velocity tokens are favoured by their distance to the level arousal asks for (calm is soft,
  excited is loud), so energy is heard in dynamics as well as in density;
- balance: each instrument's note-ons are nudged by how far its share of the last notes is from its
  share in an arrangement (drums growing with arousal), so bass, chords and pad are heard next to the
  melody, and the melody waits while it has been nearly alone (a small model left alone drifts to one
  melodic voice, like the folk tunes in its corpus, and stays there);
- register: the melody's, chords' and pad's note-ons lean up when excited and down when calm;
- key: a section's notes keep to the key its key token chose (the one valence asked for): the model's own
  scale prior for that key (its learned degree profile per instrument and mode) is added once more. The
  model picks the mode reliably but, small and CPU-trained, lets its notes drift to a neighbouring key or
  mode; this asks them to stay in the scale the section opened with, in the model's own proportions.

The conductor's help at boundaries (`boundary_bias`, also biases only): before a known cut the melody
gives way, the drums lean to a fill that grows louder, the last half beat's pitched parts hold still and
the last sixteenth breathes; on the cut the accent a listener hears (a loud level first, then crash and
kick, time held on the cut's tick until the hit is complete) and a chord that is not the one just heard;
a beat after it the new harmony holds. Which notes sound, and the chord itself, stay the model's choice.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
from dataclasses import dataclass, field

import numpy as np
import torch

from cuecast.models.music import tokens as T
from cuecast.models.music.theory import flat_histogram, key_correlations

_PITCHED_ON = torch.from_numpy(T.PITCHED_ON)
_ANY_ON = torch.from_numpy(T.KIND == 3)
_KEY_TOKENS = torch.from_numpy(T.KIND == T.Kind.KEY)
_KEY_MODE = np.zeros(T.VOCAB_SIZE, dtype=np.float32)  # +1 on the major keys, -1 on the minor ones
_KEY_MODE[T.KEY0:T.KEY0 + 12], _KEY_MODE[T.KEY0 + 12:T.KEY0 + T.N_KEYS] = 1.0, -1.0
_PITCH = torch.from_numpy(T.TOK_PITCH.astype(np.int64))
_PC = torch.from_numpy(np.where(T.TOK_PITCH >= 0, T.TOK_PITCH % 12, 0).astype(np.int64))

RATE_WINDOW_S = 3.0  # seconds of onsets the density is measured over
PC_DECAY = 0.96  # per pitched onset: the key estimate remembers the last few dozen notes
SECTION_KEEP = 0.25  # at a cut, what the key estimate keeps of the shot before: a new shot opens a new section
MIN_NOTES_FOR_KEY = 6
MAX_BIAS = 5.0
PITCHED_SHARE = 0.6  # of the target density, at least this much from pitched notes
SOFTEST_LEVEL, LOUDEST_LEVEL = 2.0, 6.5  # velocity levels (of 8) that arousal -1 and +1 ask for
ACCENT_LEVEL = 7  # the loudest level a hit on a cut asks for
ACCENT_RISE = 3.0  # levels (of 8) a cut's hit stands over the level arousal asks for
ACCENT_GAIN = 2.5  # crash, kick and a loud level on the cut: the strongest of the conductor's asks, the accent is the cut (a model
# that has not played a crash for bars gives it a log-probability near -10)
ACCENT_DRUMS = ((49, 57), (36, 35))  # the hit on a cut: a crash and a kick (the first key of each favoured, either heard as one)
HIT_NOTES = 3  # pitched notes a hit's chord has (a triad), besides its crash and kick
HOLD_GAIN = 3.0  # time shifts on the cut's tick while the hit is incomplete: the tick waits for its hit
FILL_DRUMS = (38, 45, 47, 50)  # snare and toms: what a fill into a cut is played on
CRESCENDO_GAIN = 0.5  # in the beat before a known cut, a level up favoured and a level down not
BREATH_BEATS = 0.25  # the last sixteenth before a known cut is a breath: nothing new struck, the notes released
BREATH_GAIN = 2.0
SWELL_KINDS = ("fade", "dissolve", "mood")  # boundaries that swell into the new shot rather than hit it

_VEL_LEVELS = torch.arange(T.N_VEL, dtype=torch.float32)
_ANY_ON_F32 = (T.KIND == 3).astype(np.float32)
_ZEROS = np.zeros(T.VOCAB_SIZE, dtype=np.float32)  # never written: every sum makes a new array
_INST = torch.from_numpy(T.TOK_INST.astype(np.int64))
_INST_OR_0 = _INST.clamp(min=0)  # an index for every token (-1: none)
BALANCE_NOTES = 16  # the balance is judged over this many last note-ons, however long ago: a sparse, calm
# stream needs its parts as much as a busy one (a time window never filled at one note a second)
MAX_BALANCE = 3.0
ACCOMPANIMENT_NOTES = 4  # the melody waits while fewer of the last BALANCE_NOTES note-ons were accompaniment
MELODY = T.INSTS.index("guitar")  # the instrument that plays cuecast's melody part
REGISTER_SPAN = 18.0  # semitones either side of middle C over which the register tilt grows, then stays
_MELODY_ON = torch.from_numpy(T.PITCHED_ON & (T.TOK_INST == T.INSTS.index("guitar")))
_HARMONY_ON = torch.from_numpy(T.PITCHED_ON & np.isin(T.TOK_INST, [T.INSTS.index("piano"), T.INSTS.index("strings")]))
_PITCHED_OFF = torch.from_numpy((T.KIND == 4) & (T.TOK_INST > 0))
_REGISTER_TILT = torch.from_numpy(np.where(T.PITCHED_ON & (T.TOK_INST != T.INSTS.index("bass")),
                                           np.clip((T.TOK_PITCH - 60) / 12.0, -REGISTER_SPAN / 12, REGISTER_SPAN / 12),
                                           0.0)).float()
DEFAULT_LEVEL = 4  # the level a note plays at before any velocity token (the generator's default)


_onset_time, _onset_pitched = operator.itemgetter(0), operator.itemgetter(1)  # of an entry of Steering.onsets


def target_notes_per_second(arousal: float, lo: float = 1.5, hi: float = 20.0) -> float:
    """The density arousal asks for: geometric from `lo` (arousal -1) to `hi` (+1) notes per second."""
    a = min(1.0, max(-1.0, arousal))
    return lo * (hi / lo) ** ((a + 1.0) / 2.0)


def key_score_gradient(pcs: np.ndarray, eps: float = 1.0) -> np.ndarray:
    """(12,) change of the major-minor key score if one more note of each pitch class were played,
    scaled so that the largest magnitude is 1 (zeros for a flat or empty histogram)."""
    return key_score_and_gradient(pcs, eps)[1]


def key_score_and_gradient(pcs: np.ndarray, eps: float = 1.0) -> tuple[float, np.ndarray]:
    """(key score of pcs: best major minus best minor correlation, key_score_gradient(pcs)) with the histogram's own correlations computed once (both
    are asked for at every pitched note)."""
    h = np.asarray(pcs, dtype=float)
    base_major, base_minor = key_correlations(h)
    base = base_major.max() - base_minor.max()
    if flat_histogram(h)[0]:
        return float(base), np.zeros(12)
    major, minor = key_correlations(h[None, :] + eps * np.eye(12))  # 12 histograms, one note added each
    grad = major.max(axis=1) - minor.max(axis=1) - base
    m = np.abs(grad).max()
    return float(base), (grad / m if m > 1e-9 else np.zeros(12))


def density_bias(rate: float, target: float, strength: float) -> float:
    """Logit bias for note-ons: positive when the stream plays less than the target, negative when more."""
    if strength <= 0:
        return 0.0
    return max(-MAX_BIAS, min(MAX_BIAS, strength * math.log((target + 0.5) / (rate + 0.5))))


def part_shares(arousal: float) -> np.ndarray:
    """Share of note-ons each instrument (tokens.INSTS order: drums, bass, guitar = melody, piano = chords,
    strings = pad) should have: every part audible in its role, drums growing with arousal."""
    a = 0.5 if math.isnan(arousal) else (min(1.0, max(-1.0, arousal)) + 1.0) / 2.0
    shares = np.array([0.05 + 0.3 * a, 0.15, 0.25, 0.25, 0.15])
    return shares / shares.sum()


def balance_bias(parts: list[int], arousal: float) -> torch.Tensor:
    """(V,) bias on each instrument's note-ons from the instruments of the last note-ons: log(wanted share /
    recent share), bounded, so a part that has been silent is invited in and one that plays everything is
    held back."""
    counts = np.bincount(parts, minlength=len(T.INSTS)).astype(float)
    have = (counts + 0.5) / (counts.sum() + 0.5 * len(counts))
    by_inst = torch.from_numpy(np.clip(np.log(part_shares(arousal) / have), -MAX_BALANCE, MAX_BALANCE)).float()
    return torch.where(_ANY_ON, by_inst[_INST_OR_0], 0.0)


def register_bias(arousal: float) -> torch.Tensor:
    """(V,) tilt of the melody's, chords' and pad's note-ons by pitch: higher when excited, lower and darker
    when calm (bass keeps the bottom and drums have no register). Per octave from middle C, up to
    REGISTER_SPAN semitones: the part keeps its own range, only leaning up or down within it."""
    a = min(1.0, max(-1.0, arousal))
    return a * _REGISTER_TILT


def level_bias(level: int, arousal: float) -> torch.Tensor:
    """(N_VEL,) bias on the velocity tokens: each level by how much closer it is to the level arousal asks
    for than the level now playing (`level` -1: none yet, the default middle level), so a stream already
    at the right loudness has no reason to change and one that is off is invited to."""
    want = target_level(arousal)
    now = level if level >= 0 else DEFAULT_LEVEL
    return abs(now - want) - (_VEL_LEVELS - want).abs()


def target_level(arousal: float) -> float:
    """The velocity level (0..7) arousal asks for: soft when calm, loud when excited."""
    a = min(1.0, max(-1.0, arousal))
    return SOFTEST_LEVEL + (LOUDEST_LEVEL - SOFTEST_LEVEL) * (a + 1.0) / 2.0


@dataclass(frozen=True)
class CutScene:
    """What the conductor's help at a boundary needs besides the time to it (see `boundary_bias`)."""

    harmony_before: tuple[int, ...] = ()  # pitch classes struck in the beat before the cut (the harmony it leaves)
    keys_before: tuple[int, ...] = ()  # and their MIDI pitches
    since_s: float = math.nan  # seconds since the last boundary was reached (NaN: none)
    known: bool = True  # the boundary ahead is known, not a forecast: only a known cut is prepared
    hit: bool = True  # the boundary being struck is a cut (a gradual transition swells into its new chord, no hit)
    struck_drums: frozenset[int] = frozenset()  # drum keys struck on the cut's tick so far
    struck_pitched: int = 0  # pitched notes struck on the cut's tick so far
    cut_chord: tuple[int, ...] = ()  # in the beat after a cut: the note-on and note-off tokens of the notes struck on it
    blocked_drums: frozenset[int] = frozenset()  # drum keys the guard does not allow now (too many hits at once)
    level: int = -1  # the velocity level playing (-1: none yet)
    arousal: float = 0.0
    key_open: bool = False  # on the cut, the key in force has the other mode than the picture asks for
    tonic: int = -1  # pitch class of the key in force's tonic (-1: no key yet)


def accent_level(arousal: float) -> int:
    """The velocity level of the hit on a cut: ACCENT_RISE levels over what arousal asks for, so a calm
    piece's cut stands out from its own soft texture without a fortissimo that belongs to an action scene."""
    return int(min(ACCENT_LEVEL, round(target_level(arousal) + ACCENT_RISE)))


def boundary_phase(offset_s: float, tick_s: float, beat_s: float, strength: float, known: bool,
                   since_s: float) -> str | None:
    """Which help a boundary asks for now: "strike" on it, "prepare" in the beat before a known one (a forecast is
    not prepared for), "after" in the beat after the last one; None when none is near."""
    if strength <= 0:
        return None
    if not math.isnan(offset_s) and offset_s < tick_s / 2:
        return "strike"
    if known and not math.isnan(offset_s) and offset_s <= beat_s:
        return "prepare"
    if in_beat_after(since_s, beat_s):
        return "after"
    return None


def in_beat_after(since_s: float, beat_s: float) -> bool:
    """Whether `since_s` seconds after the last boundary (NaN: none yet) is within the beat after it."""
    return not math.isnan(since_s) and 0.0 < since_s < beat_s


def boundary_near(offset_s: float, tick_s: float, beat_s: float, strength: float, known: bool, since_s: float) -> bool:
    """Whether `boundary_bias` has anything to say (a cheap test: the generator asks it at every token and
    builds the CutScene only when it does)."""
    return boundary_phase(offset_s, tick_s, beat_s, strength, known, since_s) is not None


def boundary_bias(offset_s: float, tick_s: float, beat_s: float, strength: float,
                  scene: CutScene = CutScene()) -> torch.Tensor | None:
    """(V,) logit bias around a boundary `offset_s` seconds ahead (NaN: none known) and in the beat after
    the last one (`scene.since_s` seconds ago), or None when neither is near. Biases only: which notes sound,
    and the chord itself, stay the model's choice. A cut a listener hears is prepared, struck and followed by
    something new (`_prepare`, `_strike`, `_after`)."""
    phase = boundary_phase(offset_s, tick_s, beat_s, strength, scene.known, scene.since_s)
    if phase is None:
        return None
    out = torch.zeros(T.VOCAB_SIZE)
    if phase == "strike":
        _strike(out, strength, scene)
    elif phase == "prepare":
        _prepare(out, offset_s, beat_s, strength, scene.level)
    else:
        _after(out, strength, scene)
    return out


def _after(out: torch.Tensor, strength: float, scene: CutScene) -> None:
    """The beat after a cut: the old pitch classes and the melody still held back, at half strength, so the
    new harmony is the one heard after the cut, not the old one returning at once. And the chord struck on the cut
    rings: its notes are neither released nor struck again (a small model likes to re-strike a chord a tick or two
    later, which cuts the hit's chord to a stutter of an eighth of a beat and moves the chord the listener hears off
    the cut)."""
    out[_MELODY_ON] -= 0.5 * strength
    out[_old_harmony(scene)] -= 0.5 * strength
    if scene.cut_chord:
        out[torch.tensor(scene.cut_chord, dtype=torch.long)] -= strength


def _old_harmony(scene: CutScene) -> torch.Tensor:
    """The pitched note-ons of the harmony before the cut, but for the key's tonic: the cut changes the chord,
    not the key, and the chords a key moves between share its tonic (I-IV, i-VI, i-iv). Without it the new
    chord must avoid the tonic triad's every note, which leaves ii after I (a minor chord on every cut of a
    bright scene) and VII after i (a major one in a dark passage): fast cuts would blur the mode."""
    pcs = [pc for pc in scene.harmony_before if pc != scene.tonic]
    return _PITCHED_ON & torch.isin(_PC, torch.tensor(pcs, dtype=torch.long))


def _prepare(out: torch.Tensor, offset_s: float, beat_s: float, strength: float, level: int) -> None:
    """The beat before a known cut: the melody gives way and the drums lean to a fill (snare, toms) that
    grows louder into the hit (velocity levels above the one playing favoured, softer ones not). In its
    last half beat the pitched parts hold still (no new notes, the sounding ones released), and in its last
    sixteenth everything breathes, the fill too: the hit lands on a short silence, as a band stops before
    the downbeat of a new section, instead of on notes struck a moment before."""
    out[_MELODY_ON] -= strength
    now = level if level >= 0 else DEFAULT_LEVEL
    out[T.VEL0:T.VEL0 + T.N_VEL] += CRESCENDO_GAIN * strength * (_VEL_LEVELS - now).clamp(-1.0, 1.0)
    if offset_s < beat_s * BREATH_BEATS:
        _hold(out, _ANY_ON, BREATH_GAIN * strength)
        return
    for drum in FILL_DRUMS:
        out[T.on_token(0, drum)] += 0.5 * strength
    if offset_s < beat_s / 2:
        _hold(out, _PITCHED_ON, strength)


def _hold(out: torch.Tensor, quiet: torch.Tensor, gain: float) -> None:
    """The `quiet` note-ons and the CHORD token disfavoured, the pitched notes' releases and time moving on
    favoured. The model's boundary offset feature barely tells 30 ms from 0, so where a cut falls between
    ticks it strikes its boundary chord on the tick before: the chord is the cut's, not the breath's."""
    out[quiet] -= gain
    out[T.CHORD] -= gain
    out[_PITCHED_OFF] += gain
    out[T.SHIFT0:T.SHIFT0 + T.MAX_SHIFT] += gain


def _strike(out: torch.Tensor, strength: float, scene: CutScene) -> None:
    """On the cut (every token of its tick): a new chord (chords and pad favoured, the melody held back, the
    pitch classes of the harmony before less likely and the very keys struck before least likely: the cut
    ends the old shot's notes, and a small model likes to strike them again) and, on a cut, the accent: the
    level set loud first (note-ons wait for it), crash and kick favoured until both are struck, and time
    does not move on (shifts disfavoured) until the hit is complete, so that the accent happens rather than
    being merely favoured (a model that has not played a crash for bars gives it a log-probability near
    -10, and top-p sampling drops what the nucleus leaves out)."""
    if scene.key_open:  # the cut opens a section whose picture asks for the other mode: a new key (the model's key
        # prior and the steering pick it), which the section's notes then follow; a montage that keeps its mood keeps its key
        out[_KEY_TOKENS] += ACCENT_GAIN * strength
    out[_PITCHED_ON & torch.isin(_PITCH, torch.tensor(list(scene.keys_before), dtype=torch.long))] -= strength
    out[_HARMONY_ON] += 0.5 * strength
    out[_MELODY_ON] -= strength
    out[_old_harmony(scene)] -= strength
    if not scene.hit:
        return
    want = accent_level(scene.arousal)
    # a part of the hit the guard does not allow (three drums struck already) is not waited for
    missing = [keys[0] for keys in ACCENT_DRUMS
               if scene.struck_drums.isdisjoint(keys) and keys[0] not in scene.blocked_drums]
    # the hit is struck loud: its level comes before its notes, and no level under it is asked for on the
    # cut's tick (the loudness steering would take the level back to arousal's between the hit's notes)
    vel = out[T.VEL0:T.VEL0 + T.N_VEL]
    vel[_VEL_LEVELS < want] -= ACCENT_GAIN * strength
    if scene.level < want:
        vel[_VEL_LEVELS >= want] += ACCENT_GAIN * strength * (1.0 - 0.5 * (_VEL_LEVELS[_VEL_LEVELS >= want] - want))
        out[_ANY_ON] -= ACCENT_GAIN * strength
    else:
        for drum in missing:
            out[T.on_token(0, drum)] += ACCENT_GAIN * strength
    if missing or scene.struck_pitched < HIT_NOTES:
        out[T.SHIFT0:T.SHIFT0 + T.MAX_SHIFT] -= HOLD_GAIN * strength


@dataclass
class Steering:
    """What steering remembers of the notes played so far (copied with the generator's snapshots)."""

    mode_strength: float = 3.0
    density_strength: float = 1.5
    velocity_strength: float = 1.0
    pcs: np.ndarray = field(default_factory=lambda: np.zeros(12))
    n_pitched: int = 0
    # key_score_gradient of pcs, spread over the vocabulary (pitched note-ons; 0 elsewhere): it changes only
    # with a pitched note, while the bias is asked for at every token
    mode_tokens: torch.Tensor = field(default_factory=lambda: torch.zeros(T.VOCAB_SIZE))
    balance_strength: float = 1.0
    register_strength: float = 1.0
    # (media time, pitched, pitch class, instrument, pitch) of the note-ons of the last RATE_WINDOW_S seconds
    onsets: list[tuple[float, bool, int, int, int]] = field(default_factory=list)
    parts: list[int] = field(default_factory=list)  # instruments of the last BALANCE_NOTES note-ons
    level: int = -1  # the velocity level playing now (-1: none given yet)
    started: float = math.nan
    # (media time, MIDI pitch) of the pitched note-offs of the last RATE_WINDOW_S seconds: a chord held through
    # a beat is heard in it though struck before it
    releases: list[tuple[float, int]] = field(default_factory=list)
    key_now: float = 0.0  # key score of pcs: where the music's mode is, which valence labels (EMSYNC)
    _balance_key: tuple = ()
    _balance_bias: torch.Tensor | None = None
    onsets_in_order: bool = True  # onsets are in time order (always, unless a rewind set the clock back)
    _bias_key: tuple = ()  # the inputs of the last bias() and what it gave
    _bias_mode: torch.Tensor | None = None
    _bias: torch.Tensor | None = None
    _mode_src: torch.Tensor | None = None  # the mode term: mode_tokens scaled by how far the key is from valence's
    _mode_factor: float = math.nan
    _mode_term: np.ndarray | None = None
    _terms: dict = field(default_factory=dict)  # the other terms: name -> (their inputs, the term)
    key_strength: float = 0.0
    # (N_KEYS + 1, V): the model's scale prior under each key (last row: none); shared, never written
    key_rows: np.ndarray | None = None

    def copy(self) -> "Steering":
        return Steering(self.mode_strength, self.density_strength, self.velocity_strength, self.pcs.copy(),
                        self.n_pitched, self.mode_tokens, self.balance_strength, self.register_strength,
                        list(self.onsets), list(self.parts), self.level, self.started, list(self.releases),
                        key_now=self.key_now, onsets_in_order=self.onsets_in_order,
                        key_strength=self.key_strength, key_rows=self.key_rows)

    def new_section(self) -> None:
        """A cut: the mode is steered from the new shot's notes, not from the old shot's (a dark passage's
        minor otherwise lingers in the estimate for dozens of notes after the picture has brightened)."""
        self.pcs = self.pcs * SECTION_KEEP
        self.key_now = 0.0

    def on_token(self, tok: int, t: float) -> None:
        """Take a fed token into account (velocity levels and note-ons)."""
        if math.isnan(self.started):
            self.started = t
        if T.KIND[tok] == 2:
            self.level = tok - T.VEL0
        if T.KIND[tok] == 4:
            self.releases.append((t, int(T.TOK_PITCH[tok])))
            if self.releases[0][0] < t - RATE_WINDOW_S:
                self.releases = [x for x in self.releases if x[0] >= t - RATE_WINDOW_S]
        if T.KIND[tok] != 3:
            return
        pitched = bool(T.TOK_INST[tok] > 0)
        if self.onsets and t < self.onsets[-1][0]:
            self.onsets_in_order = False
        self.onsets.append((t, pitched, int(T.TOK_PITCH[tok]) % 12, int(T.TOK_INST[tok]), int(T.TOK_PITCH[tok])))
        if self.onsets[0][0] < t - RATE_WINDOW_S:
            self.onsets = [x for x in self.onsets if x[0] >= t - RATE_WINDOW_S]
        self.parts = self.parts[-(BALANCE_NOTES - 1):] + [int(T.TOK_INST[tok])]
        if pitched:
            self.pcs = self.pcs * PC_DECAY
            self.pcs[int(T.TOK_PITCH[tok]) % 12] += 1.0
            self.n_pitched += 1
            if self.n_pitched >= MIN_NOTES_FOR_KEY and self.mode_strength > 0:
                self.key_now, grad = key_score_and_gradient(self.pcs)
                self.mode_tokens = torch.where(_PITCHED_ON, torch.from_numpy(grad).float()[_PC], 0.0)

    def _balance_key_now(self, arousal: float) -> tuple:
        return (tuple(self.parts), arousal)

    def _balance(self, arousal: float) -> torch.Tensor:
        """balance_bias of the last notes, kept until a note or the arousal changes (it is asked for at
        every token, and most tokens are not note-ons)."""
        key = self._balance_key_now(arousal)
        if self._balance_key != key:
            self._balance_key, self._balance_bias = key, balance_bias(self.parts, arousal)
        return self._balance_bias

    def rates(self, t: float) -> tuple[float, float]:
        """Note-ons per second of the last few seconds: (all, pitched)."""
        span = max(0.75, min(RATE_WINDOW_S, t - self.started)) if not math.isnan(self.started) else RATE_WINDOW_S
        if self.onsets_in_order:  # the onsets after t - span are a tail: found by bisection, not by a scan
            first = bisect.bisect_right(self.onsets, t - span, key=_onset_time)
            return (len(self.onsets) - first) / span, sum(map(_onset_pitched, itertools.islice(self.onsets, first, None))) / span
        recent = [p for x, p, *_ in self.onsets if x > t - span]
        return len(recent) / span, sum(recent) / span

    def recent_pitch_classes(self, t: float, span: float) -> list[int]:
        """Pitch classes of the pitched notes heard in the last `span` seconds before t (the harmony now)."""
        return sorted({key % 12 for key in self.recent_keys(t, span)})

    def struck_at(self, t: float) -> tuple[frozenset[int], int]:
        """(drum keys, number of pitched notes) struck at exactly time t (the cut's tick)."""
        at = [(p, key) for x, p, _, _, key in self.onsets if abs(x - t) < 1e-6]
        return frozenset(key for p, key in at if not p), sum(p for p, _ in at)

    def chord_struck_at(self, t: float) -> tuple[int, ...]:
        """The note-on and note-off tokens of the pitched notes struck at exactly time t (the cut's tick)."""
        notes = {(inst, key) for x, p, _, inst, key in self.onsets if p and abs(x - t) < 1e-6}
        return tuple(sorted(tok for inst, key in notes for tok in (T.on_token(inst, key), T.off_token(inst, key))))

    def recent_keys(self, t: float, span: float) -> list[int]:
        """MIDI pitches of the pitched notes heard in the last `span` seconds before t: struck in it, or held
        into it (released in it or at t: the notes a cut ends are released on it)."""
        struck = {key for x, p, _, _, key in self.onsets if p and t - span <= x < t}
        return sorted(struck | {key for x, key in self.releases if t - span <= x <= t})

    def bias(self, t: float, valence: float, arousal: float, key: int = T.N_KEYS) -> torch.Tensor | None:
        """(V,) logit bias for the next token at media time t, or None when there is nothing to steer. `key` is
        the key in force (the model's cache keeps it: the index of the last key token; N_KEYS: none yet).
        The tensor is shared (kept until one of its inputs changes): never written in place."""
        mode = None
        if self.mode_strength > 0 and self.n_pitched >= MIN_NOTES_FOR_KEY and not math.isnan(valence):
            # towards the key score valence labels, from where the music is (as density steers the rate to
            # a target): a mode the music already has needs little help, one it has left needs more
            mode = self.mode_strength * max(-1.0, min(1.0, valence - self.key_now))
        section = None
        if self.mode_strength > 0 and not math.isnan(valence):
            # and a section's key (a key token, which its notes then follow) in the mode valence asks for: at a
            # moderate valence the model's own key prior is near even odds, and a key lasts the whole section
            section = self.mode_strength * max(-1.0, min(1.0, valence))
        density = None
        if self.density_strength > 0 and not math.isnan(arousal):
            target = target_notes_per_second(arousal)
            rate, pitched = self.rates(t)
            density = (density_bias(pitched, PITCHED_SHARE * target, self.density_strength),
                       density_bias(rate, target, self.density_strength))
        # most tokens change none of the inputs (a note-on changes the parts, a time shift the rate, rarely
        # its bias): the bias is rebuilt only when one did, with the same arithmetic
        inputs = (mode, section, density, tuple(self.parts), arousal, self.level, self.balance_strength,
                  self.register_strength, self.velocity_strength, key, self.key_strength)
        if self._bias_key != inputs or self._bias_mode is not self.mode_tokens:
            self._bias_key, self._bias_mode = inputs, self.mode_tokens
            self._bias = self._build_bias(mode, section, density, arousal, key)
        return self._bias

    def _build_bias(self, mode: float | None, section: float | None, density: tuple[float, float] | None,
                    arousal: float, key: int) -> torch.Tensor | None:
        """The sum of the steering terms, in a fixed order. Each term is made by torch as it always was and
        kept until its own inputs change; the sum is done in numpy (the same float32 additions, in the same
        order, a fraction of the per-op cost)."""
        out = None
        if mode is not None:
            if self._mode_src is not self.mode_tokens or self._mode_factor != mode:
                self._mode_src, self._mode_factor = self.mode_tokens, mode
                self._mode_term = (mode * self.mode_tokens).numpy()
            out = self._mode_term
        if section is not None:
            out = (_ZEROS if out is None else out) + self._term("section", section, lambda: section * _KEY_MODE)
        if self.key_strength > 0 and self.key_rows is not None and key < T.N_KEYS:
            out = (_ZEROS if out is None else out) + self._term(
                "key", (key, self.key_strength), lambda: self.key_strength * self.key_rows[key])
        if density is not None:
            out = (_ZEROS if out is None else out) + self._term("density", density, lambda: _density_term(*density))
        if self.balance_strength > 0:
            out = (_ZEROS if out is None else out) + self._term(
                "balance", (self._balance_key_now(arousal), self.balance_strength),
                lambda: self.balance_strength * self._balance(arousal))
            if sum(p != MELODY for p in self.parts) < ACCOMPANIMENT_NOTES:
                # the tune is heard over its accompaniment: it enters after it, as arrangements open, and
                # waits for it when it has been alone (a small model that plays a lone tune for a few bars
                # turns into a folk tune for the rest of the piece: its corpus is full of them)
                out = out - self._term("melody", self.balance_strength,
                                       lambda: self.balance_strength * MAX_BALANCE * _MELODY_ON)
        if self.register_strength > 0 and not math.isnan(arousal):
            out = (_ZEROS if out is None else out) + self._term(
                "register", (arousal, self.register_strength), lambda: self.register_strength * register_bias(arousal))
        if self.velocity_strength > 0 and not math.isnan(arousal):
            out = _ZEROS.copy() if out is None else (out.copy() if out is self._mode_term else out)
            out[T.VEL0:T.VEL0 + T.N_VEL] += self._term(
                "velocity", (self.level, arousal, self.velocity_strength),
                lambda: self.velocity_strength * level_bias(self.level, arousal))
        return None if out is None else torch.from_numpy(out)

    def _term(self, name: str, key, make) -> np.ndarray:
        """A steering term as a float32 array: `make()` (a tensor or array) when `key` differs from the last one's."""
        hit = self._terms.get(name)
        if hit is None or hit[0] != key:
            term = make()
            hit = self._terms[name] = (key, term.numpy() if isinstance(term, torch.Tensor) else term)
        return hit[1]


def _density_term(pitched: float, any_on: float) -> np.ndarray:
    """torch.where(_PITCHED_ON, pitched, _ANY_ON * any_on) in numpy, value for value (float32 casts of the
    biases, a signed zero off the note-ons): it changes with the rate, at most tokens."""
    return np.where(T.PITCHED_ON, np.float32(pitched), _ANY_ON_F32 * np.float32(any_on))
