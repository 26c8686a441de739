"""The `transformer` generator backend: the music transformer driven one StepPlan at a time.

The model's clock is the conductor's beat grid: a time shift is twelfths of the plan's beat (so the music
follows `plan.tempo_bpm`), shifts stop at every beat line, at the end of the step and at the next boundary
(so a chord can land exactly on a cut that falls between beats), and BAR tokens are fed where the
conductor's bar lines are. Every token gets the plan's valence and arousal and the seconds from its time
to the next boundary (EMSYNC's boundary offset); at the boundary the CHORD token gets a small logit bonus.
Around a cut the conductor helps with logit biases only (`steer.boundary_bias`): in the beat before a known
cut the melody gives way, the drums lean to a growing fill, the pitched parts hold still in the last half beat
and everything breathes in the last sixteenth; on the cut a loud level, crash, kick and chords are favoured
(time waits on the cut's tick until the hit is complete; a fade gets its new chord but no hit) and the harmony
just heard disfavoured, and for a beat after it the new harmony holds. The chord itself, its notes and their
length are the model's. Valence and arousal also steer sampling (`steer.py`: mode, note density, loudness, register and the balance of the parts as soft logit
biases), and with `guidance` > 1 classifier-free guidance on both.

A step returns the notes that start in [t0, t1). A note's end is known only when the model closes it, so
generation runs ahead of t1 until every note started before t1 is closed (at most `max_hold_beats`, the
guard's limit). `rewind(t)` restores the state at t from a snapshot plus a replay of the logged tokens.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cuecast.models.common import pick_device
from cuecast.models.music import model as M
from cuecast.models.music import tokens as T
from cuecast.models.music.config import GeneratorConfig
from cuecast.models.music.sample import Guard, on_to_off, sample
from cuecast.models.music.steer import (ACCENT_DRUMS, SWELL_KINDS, CutScene, Steering, boundary_bias, boundary_near,
                                       in_beat_after)
from cuecast.types import Note, StepPlan

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "music_transformer.pt"
EPS = 1e-6
# Tokens logged before the oldest snapshot are dropped once there are this many (in batches, not per
# token): the log stays ~the snapshots' span, not a sawtooth of megabytes in a long live run.
LOG_SLACK = 2048


@dataclass
class _State:
    """Everything `rewind` must restore (tensors are shared, never written in place)."""

    cache: M.KVCache
    logits: torch.Tensor
    guard: Guard
    steer: Steering
    clock: float
    level: int
    last_bar: float = math.nan  # time of the last BAR fed (never two at one time)
    chord_at: float = math.nan  # time of the last CHORD token
    cut_at: float = math.nan  # time of the last boundary reached
    key_at: float = math.nan  # time of the last key token
    cut_pcs: tuple[int, ...] = ()  # pitch classes struck in the beat before it (the harmony it leaves)
    cut_keys: tuple[int, ...] = ()  # and their MIDI pitches
    sounding: dict[int, tuple[float, int]] = field(default_factory=dict)  # on-token -> (start s, velocity)

    def copy(self) -> "_State":
        return _State(self.cache.clone(), self.logits, self.guard.copy(), self.steer.copy(), self.clock, self.level,
                      self.last_bar, self.chord_at, self.cut_at, self.key_at, self.cut_pcs, self.cut_keys, dict(self.sounding))


class TransformerGenerator:
    name = "transformer"
    events_per_tick = 24  # the guard's cap on events without time moving

    def __init__(self, cfg: GeneratorConfig, model: M.MusicTransformer | None = None):
        self.cfg = cfg
        self.device = str(pick_device(cfg.device, "generator.device"))
        if model is None:
            model, _ = M.load(cfg.weights or str(DEFAULT_WEIGHTS), self.device)
        self.model = model.to(self.device).eval()
        self.chord_bias = float(cfg.chord_bias)
        self.max_hold_beats = float(cfg.max_hold_beats)
        self.guidance = float(cfg.guidance)
        self.reset(cfg.seed)

    # ---- Generator protocol ------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        self.gen = torch.Generator().manual_seed(int(seed))
        cache = self.model.new_cache()
        logits = self.model.step_rows(T.BOS, ((math.nan,) * 3,) * (1 if self.guidance == 1.0 else 2), cache)[0]
        guard = Guard(max_polyphony=self.cfg.max_polyphony, max_hold_ticks=int(self.max_hold_beats * T.TICKS_PER_BEAT),
                      max_events_per_tick=self.events_per_tick)
        steer = Steering(mode_strength=self.cfg.mode_steer, density_strength=self.cfg.density_steer,
                         velocity_strength=self.cfg.velocity_steer, balance_strength=self.cfg.balance_steer,
                         register_strength=self.cfg.register_steer, key_strength=self.cfg.key_steer,
                         key_rows=self.model.scale_rows().detach().cpu().numpy() if self.cfg.key_steer > 0 else None)
        self.s = _State(cache, logits, guard, steer, clock=math.nan, level=-1)
        self.closed: list[Note] = []  # notes closed, not yet returned
        self.emitted_until = -math.inf  # notes starting before this were returned already
        self.log: list[tuple[int, float, float, float, float]] = []  # (token, time, val, aro, off)
        self.snaps: deque[tuple[float, int, _State]] = deque(maxlen=24)  # (clock, log length, state): ~12 s of steps, 2.4 MB each
        self.tokens_generated = 0

    def step(self, plan: StepPlan) -> list[Note]:
        """The notes starting in [plan.t0, plan.t1). One token at a time is many tiny ops: run it with one torch
        thread (the caller's setting, `runtime.torch_threads`; extra threads only wait on each other)."""
        if plan.t1 <= plan.t0:
            return []
        s = self.s
        cut = plan.t0 if plan.at_boundary else plan.next_boundary
        if cut is not None and not math.isnan(s.clock) and s.clock > cut + EPS:
            # running ahead to close its notes, the model played past a cut it did not know of then (a held
            # note may take it 4 beats on): what it played after t0 is forgotten, so the cut is heard
            self.rewind(plan.t0)
            s = self.s
        skipped = plan.t0 > self.emitted_until + EPS  # the conductor left out music (live, behind the playhead)
        if math.isnan(s.clock) or s.clock < plan.t0 - 1.0 or (skipped and s.clock < plan.t0):
            s.clock = plan.t0  # start, or a gap the conductor skipped: the model's clock jumps, nothing is made for it
        self.snaps.append((s.clock, len(self.log), s.copy()))
        grid = _Grid(plan)
        if abs(s.clock - plan.t0) < EPS and grid.is_bar(plan.t0):
            self._bar(plan)
        budget = 4000
        # running ahead of t1 (to learn when the notes started before t1 end) never passes the next boundary:
        # what follows it belongs to the next shot, which later plans describe
        limit = plan.next_boundary if plan.next_boundary is not None and plan.next_boundary >= plan.t1 - EPS else math.inf
        while budget > 0 and (s.clock < plan.t1 - EPS or any(st < plan.t1 - EPS for st, _ in s.sounding.values())):
            budget -= 1
            if s.clock >= max(limit, plan.t1) - EPS:  # at the boundary: the old shot's notes end on the cut
                for on, (st, _) in sorted(s.sounding.items()):
                    if st < plan.t1 - EPS:
                        self._feed(on_to_off(on), plan)
                break
            forced = s.guard.forced()
            if forced is not None:
                self._feed(forced, plan)
                continue
            stop = grid.next_stop(s.clock)
            tick_s = plan.beat_s / T.TICKS_PER_BEAT
            max_shift = max(1, min(T.MAX_SHIFT, int(math.ceil((stop - s.clock) / tick_s - 1e-3))))
            off = self._offset(plan, s.clock)
            bias = s.steer.bias(s.clock, plan.valence, plan.arousal, s.cache.key)
            mask = s.guard.mask(max_shift)
            if off < tick_s / 2 and not abs(s.cut_at - s.clock) < EPS:  # reached a boundary: remember what it leaves
                s.cut_at, s.cut_pcs = s.clock, tuple(s.steer.recent_pitch_classes(s.clock, plan.beat_s))
                s.cut_keys = tuple(s.steer.recent_keys(s.clock, plan.beat_s))
                s.steer.new_section()
            # every token of the cut's tick is on the cut, also after its CHORD moved the offset to the next one
            on_cut = 0.0 if abs(s.cut_at - s.clock) < EPS else off
            help_ = None
            if boundary_near(on_cut, tick_s, plan.beat_s, self.cfg.boundary_steer, plan.boundary_known, s.clock - s.cut_at):
                help_ = boundary_bias(on_cut, tick_s, plan.beat_s, self.cfg.boundary_steer, self._scene(plan, mask))
            if help_ is not None:
                bias = help_ if bias is None else bias + help_
            if not math.isnan(off) and off < tick_s / 2:
                bias = torch.zeros_like(s.logits) if bias is None else bias.clone()  # steering's bias is shared
                bias[T.CHORD] += self.chord_bias
            tok = sample(s.logits, mask, self.cfg.temperature, self.cfg.top_p, self.gen, bias)
            if T.KIND[tok] == 1:
                k = tok - T.SHIFT0 + 1
                new = s.clock + k * tick_s
                if new >= stop - tick_s / 2:  # land exactly on the stop (beat line, step end, boundary)
                    new = stop
                    k = max(1, min(T.MAX_SHIFT, round((stop - s.clock) / tick_s)))
                s.clock = new
                self._feed(T.shift_token(k), plan)
                if grid.is_bar(new):
                    self._bar(plan)
            else:
                self._feed(tok, plan)
        if budget == 0:  # the guards make this unreachable in practice; close everything to stay playable
            for off_tok in s.guard.close_all():
                self._feed(off_tok, plan)
        out = sorted(n for n in self.closed if plan.t0 - EPS <= n.start < plan.t1 - EPS)
        self.closed = [n for n in self.closed if n.start >= plan.t1 - EPS]
        self.emitted_until = max(self.emitted_until, plan.t1)
        return out

    def rewind(self, t: float) -> None:
        """Forget what was generated at or after media time t; the next step regenerates from t."""
        snap = next((x for x in reversed(self.snaps) if x[0] <= t + EPS), None)
        if snap is None:
            if self.snaps:  # older than the snapshots kept: start the clock fresh at t
                self.s = self.snaps[0][2].copy()
                self.s.clock = t
            self.closed = [n for n in self.closed if n.start < t]
            self.emitted_until = min(self.emitted_until, t)
            return
        clock, n_log, state = snap
        replay = [x for x in self.log[n_log:] if x[1] < t - EPS]
        self.s = state.copy()
        self.log = self.log[:n_log]
        while self.snaps and self.snaps[-1][0] > clock - EPS:
            self.snaps.pop()
        self.closed = []
        self.emitted_until = min(self.emitted_until, t)
        for tok, time, val, aro, off in replay:
            if T.KIND[tok] == 1:
                self.s.clock = time
            self._advance(tok, time, val, aro, off, record_notes=False)

    # ---- internals ---------------------------------------------------------------------------------

    def _offset(self, plan: StepPlan, t: float) -> float:
        """Seconds from t to the boundary this token runs towards (NaN when none is known or passed)."""
        b = plan.t0 if plan.at_boundary and t <= plan.t0 + EPS else plan.next_boundary
        if b is not None and abs(self.s.chord_at - b) < EPS:  # its chord is placed: the next one is unknown
            b = plan.next_boundary if plan.next_boundary is not None and plan.next_boundary > b + EPS else None
        if b is None or t > b + EPS:
            return math.nan
        return min(M.OFFSET_MAX, max(0.0, b - t))

    def _scene(self, plan: StepPlan, mask: torch.Tensor) -> CutScene:
        """What the boundary help needs to know now: the harmony the last cut left, whether the boundary ahead
        is known (a forecast is not prepared for) and the one struck is a cut (not a fade), and what the cut's
        tick has struck so far and what the guard (`mask`) still lets it strike."""
        s = self.s
        on_cut = abs(s.cut_at - s.clock) < EPS
        drums, pitched = s.steer.struck_at(s.cut_at) if on_cut else (frozenset(), 0)
        chord = s.steer.chord_struck_at(s.cut_at) if in_beat_after(s.clock - s.cut_at, plan.beat_s) else ()
        blocked = frozenset(k for keys in ACCENT_DRUMS for k in keys if mask[T.on_token(0, k)]) if on_cut else frozenset()
        return CutScene(s.cut_pcs, s.cut_keys, s.clock - s.cut_at, known=plan.boundary_known,
                        hit=plan.boundary_kind not in SWELL_KINDS, struck_drums=drums, struck_pitched=pitched,
                        blocked_drums=blocked, level=s.steer.level, arousal=plan.arousal,
                        cut_chord=chord,
                        key_open=on_cut and not abs(s.key_at - s.cut_at) < EPS and self._other_mode(s.cache.key, plan.valence),
                        tonic=s.cache.key % 12 if s.cache.key < T.N_KEYS else -1)

    @staticmethod
    def _other_mode(key: int, valence: float) -> bool:
        """Whether the key in force (a key token's index; N_KEYS: none yet) is not in the mode valence asks for."""
        # no dead zone around 0: the new shot's first window still carries some of the smoothing across the cut
        # (a bright shot after a dark passage reads +0.1 at first), so its sign is what the picture asks
        return key < T.N_KEYS and not math.isnan(valence) and (key >= 12) != (valence < 0)

    def _bar(self, plan: StepPlan) -> None:
        if not abs(self.s.last_bar - self.s.clock) < EPS:
            self._feed(T.BAR, plan)

    def _feed(self, tok: int, plan: StepPlan) -> None:
        t = self.s.clock
        self._advance(tok, t, plan.valence, plan.arousal, self._offset(plan, t), record_notes=True, plan=plan)

    def _advance(self, tok: int, t: float, val: float, aro: float, off: float, record_notes: bool,
                 plan: StepPlan | None = None) -> None:
        s = self.s
        kind = T.KIND[tok]
        if tok == T.BAR:
            s.last_bar = t
        elif tok == T.CHORD:
            s.chord_at = t
        elif kind == 2:
            s.level = tok - T.VEL0
        elif kind == T.Kind.KEY:
            s.key_at = t
        elif kind == 3:
            vel = T.level_velocity(s.level if s.level >= 0 else 4)
            if T.TOK_INST[tok] == 0:
                beat_s = plan.beat_s if plan is not None else 0.5
                self._emit(Note(t, t + T.DRUM_TICKS * beat_s / T.TICKS_PER_BEAT, int(T.TOK_PITCH[tok]), vel, "drums"), record_notes)
            else:
                s.sounding[tok] = (t, vel)
        elif kind == 4:
            on = tok - T.N_PITCH
            if on in s.sounding:
                st, vel = s.sounding.pop(on)
                inst = T.TO_CUECAST[T.INSTS[int(T.TOK_INST[tok])]]
                self._emit(Note(st, max(t, st + 1e-3), int(T.TOK_PITCH[tok]), vel, inst), record_notes)
        s.guard.update(tok)
        s.steer.on_token(tok, t)
        if self.guidance == 1.0:
            s.logits = self.model.step(tok, val, aro, off, s.cache)
        else:  # classifier-free guidance on the emotion: the same stream without valence and arousal (their
            # learned missing vectors, which condition dropout trained) as the baseline
            lc, lu = self.model.step_rows(tok, ((val, aro, off), (math.nan, math.nan, off)), s.cache)
            # a token both streams rule out (-inf: e.g. one older weights never choose) stays out, not NaN
            s.logits = torch.where(torch.isinf(lu) & torch.isinf(lc), lc, lu + self.guidance * (lc - lu))
        self.log.append((tok, t, val, aro, off))
        self.tokens_generated += 1
        if self.snaps and self.snaps[0][1] > LOG_SLACK:  # rewind replays only from the oldest snapshot on
            cut = self.snaps[0][1]
            self.log = self.log[cut:]
            self.snaps = deque(((c, n - cut, st) for c, n, st in self.snaps), maxlen=self.snaps.maxlen)

    def _emit(self, note: Note, record: bool) -> None:
        if record and note.start >= self.emitted_until - EPS:
            self.closed.append(note)


class _Grid:
    """The conductor's beat grid around one step: where time shifts must stop, and where bars start."""

    def __init__(self, plan: StepPlan):
        self.plan = plan
        self.beat_s = plan.beat_s
        # beat lines: t1 and every beat after it; the step itself is one beat or the part of one up to a boundary
        self.first_beat = plan.t1
        full = plan.t1 - plan.t0 >= self.beat_s - 1e-4
        self.first_index = plan.beat + 1 if (plan.on_grid and full) else None
        self.bar0 = plan.beat - plan.beat_in_bar

    def next_stop(self, clock: float) -> float:
        stops = [self.plan.t0, self.plan.t1]
        if self.plan.next_boundary is not None:
            stops.append(self.plan.next_boundary)
        if clock >= self.plan.t1 - EPS:
            k = math.floor((clock - self.first_beat) / self.beat_s + EPS) + 1
            stops.append(self.first_beat + k * self.beat_s)
        return min(x for x in stops if x > clock + EPS) if any(x > clock + EPS for x in stops) else clock + self.beat_s

    def is_bar(self, t: float) -> bool:
        if abs(t - self.plan.t0) < EPS:
            return self.plan.on_grid and self.plan.beat_in_bar == 0
        if self.first_index is None or t < self.first_beat - EPS:
            return False
        k = (t - self.first_beat) / self.beat_s
        if abs(k - round(k)) > 1e-4:
            return False
        return (self.first_index + round(k) - self.bar0) % self.plan.beats_per_bar == 0
