"""The drums part: no drums when very calm, brushed time, half-time, straight, busy; a fill into a known cut."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cuecast.models.music.arranger import feel
from cuecast.models.music.arranger.state import DRUMS as D, clamp
from cuecast.types import Note, StepPlan

if TYPE_CHECKING:
    from cuecast.models.music.arranger.generator import Arranger


def play(a: "Arranger", plan: StepPlan, x: float, ev: list[Note]) -> None:
    """One beat of the groove for the arousal; a fill into a known boundary."""
    b, B, beat_s, t0 = plan.beat_in_bar, plan.beats_per_bar, plan.beat_s, plan.t0
    sec = a.st.section
    if x < 0.18 or sec is None:
        return
    vel = feel.vel(a.rng, x, 6) + feel.crescendo(plan, t0)
    hits: list[tuple[float, int, int]] = []  # (offset in beats, pitch, velocity offset)
    back = b % 2 == 1  # backbeats: 2 and 4 in 4/4
    ttb = plan.time_to_boundary()
    fill = plan.boundary_known and plan.next_boundary is not None and ttb <= beat_s * 1.01 and x >= 0.35 and not plan.at_boundary
    fill = fill or (x >= 0.45 and b == B - 1 and sec.bars % 8 == 0)
    if fill:
        toms = (D["snare"], D["tom_high"], D["tom_mid"], D["tom_low"])
        n = 4 if beat_s >= 0.3 else 2
        for k in range(n):
            hits.append((k / n, toms[k % 4] if sec.variant % 2 else D["snare"], -10 + 6 * k))
    elif x < 0.35:  # soft: brushed time on the ride (or a shaker), side stick on the backbeat
        if sec.variant % 3 == 2:
            hits += [(0.0, D["shaker"], -30), (0.5, D["shaker"], -38)]
        else:
            hits.append((0.0, D["ride"], -30))
        if back:
            hits.append((0.0, D["side_stick"], -20))
        if b == 0 or (b == B // 2 and sec.variant % 2):
            hits.append((0.0, D["kick"], -18))
    elif x < 0.55:  # half-time: snare only in the middle of the bar
        hat = D["ride"] if sec.variant % 5 == 4 else D["hat_closed"]
        hits += [(0.0, hat, -22), (0.5, hat, -30)]
        if b == 0:
            hits.append((0.0, D["kick"], 0))
        if b == B // 2 and B >= 3:
            hits.append((0.0, D["snare"], 0))
        if b == 1 and sec.variant % 2:
            hits.append((0.5, D["kick"], -10))
        if b == B - 1 and sec.variant % 3 == 2:
            hits.append((0.75, D["kick"], -14))
    elif x < 0.78:  # straight: kick on 1 and 3 (and a variant's pickups), snare on 2 and 4, eighth hats
        hat = D["ride"] if sec.variant % 4 == 3 else D["hat_closed"]
        hits += [(0.0, hat, -18), (0.5, hat, -28)]
        if b % 2 == 0:
            hits.append((0.0, D["kick"], 0))
        else:
            hits.append((0.0, D["snare"], 0))
            if sec.variant % 5 == 1:
                hits.append((0.0, D["tambourine"], -20))
        kick_extra = ((), ((B - 1, 0.5),), ((1, 0.5),), ((B // 2, 0.5), (B - 1, 0.5)))[sec.variant % 4]
        for kb, ko in kick_extra:
            if b == kb:
                hits.append((ko, D["kick"], -8))
    else:  # busy: sixteenth hats, syncopated kicks, ghost notes, open hat
        for k in range(4):
            hits.append((k / 4, D["hat_closed"], -16 if k % 2 == 0 else -30))
        if b % 2 == 0:
            hits.append((0.0, D["kick"], 2))
            hits.append((0.75, D["kick"] if sec.variant % 2 else D["snare"], -22))
        else:
            hits.append((0.0, D["snare"], 4))
            hits.append((0.5, D["kick"], -8))
            if sec.variant % 3 == 0:
                hits.append((0.0, D["clap"], -12))
        if b == B - 1:
            hits.append((0.5, D["hat_open"], -14))
    if b == 0 and not plan.at_boundary and x >= 0.5 and sec.bars % 8 == 1 and sec.bars > 1:
        hits.append((0.0, D["crash"], 4))
    for off, pitch, dv in hits:
        t = t0 + feel.swing(a.st, off, plan) * beat_s
        ev.append(Note(t, t + (0.5 if pitch in (D["crash"], D["hat_open"]) else 0.1), pitch, clamp(vel + dv, 1, 127), "drums"))
