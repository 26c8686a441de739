"""report.png: what the engine saw and what it played, on one media-time axis.

Three panels: emotion (Ekman-6 probabilities stacked, valence/arousal on top), boundaries with the tempo
the conductor chose, and a piano roll coloured by instrument with the chord onsets marked. Cuts are drawn
faintly through every panel so a glance shows whether chords land on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from cuecast.engine.errors import UserError
from cuecast.streams.files import replacing
from cuecast.types import EKMAN6, Boundary, Note, Timeline

EMOTION_COLOURS = {"anger": "#d62728", "disgust": "#8c9d2a", "fear": "#7b3fa0", "joy": "#f2c12e",
                   "sadness": "#1f77b4", "surprise": "#ff7f0e"}
NEUTRAL_COLOUR = "#b0b0b0"
KIND_COLOURS = {"hard": "#d62728", "fade": "#6a3d9a", "dissolve": "#ff7f0e", "hint": "#2ca02c"}
INSTRUMENT_COLOURS = {"drums": "#555555", "bass": "#1f77b4", "chords": "#d62728", "melody": "#2ca02c",
                      "pad": "#9467bd"}
OTHER_COLOURS = ["#8c564b", "#e377c2", "#17becf", "#bcbd22"]
DRUM_LANE = 6  # pitch rows the drum lane takes below the lowest pitched note


def write_report(path: str | Path, timeline: Timeline, notes: list[Note]) -> None:
    """Draw the report and save it as PNG, atomically (temp file, then os.replace)."""
    fig = build_figure(timeline, notes)
    path = Path(path)
    try:
        with replacing(path, suffix=".part.png") as tmp, open(tmp, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def build_figure(timeline: Timeline, notes: list[Note]) -> Figure:
    # Figure without pyplot: no global backend or state, safe inside a long-running engine.
    fig = Figure(figsize=(15, 10), layout="constrained")
    ax_emo, ax_cut, ax_roll = fig.subplots(3, 1, sharex=True, height_ratios=[1.0, 0.7, 1.5])
    end = max([timeline.duration] + [n.end for n in notes] + [w.end for w in timeline.emotion] + [0.1])
    _emotion_panel(ax_emo, timeline)
    _boundary_panel(ax_cut, timeline)
    _piano_roll(ax_roll, timeline, notes)
    for ax in (ax_emo, ax_roll):  # cuts faintly through the other panels
        for b in timeline.boundaries:
            ax.axvline(b.t, color=KIND_COLOURS.get(b.kind, "#999999"), lw=0.8, alpha=0.35, zorder=0)
    ax_roll.set_xlim(0, end)
    ax_roll.set_xlabel("media time (s)")
    fig.suptitle(_title(timeline, notes), fontsize=13)
    return fig


def _title(timeline: Timeline, notes: list[Note]) -> str:
    meta = timeline.meta or {}
    name = Path(str(meta.get("input", ""))).name or "cuecast"
    parts = [name, f"{timeline.duration:.1f} s", f"{len(timeline.boundaries)} boundaries",
             f"{len(timeline.chords)} chord onsets", f"{len(notes)} notes"]
    for key in ("generator", "seed", "lookahead_s"):
        if key in meta:
            parts.append(f"{key} {meta[key]}")
    return "  ·  ".join(parts)


def _emotion_panel(ax, timeline: Timeline) -> None:
    ax.set_title("Emotion per window: Ekman-6 probabilities and the neutral share (stacked), valence / arousal", loc="left", fontsize=11)
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    va = ax.twinx()
    va.set_ylim(-1.05, 1.05)
    va.set_ylabel("valence / arousal")
    windows = sorted(timeline.emotion, key=lambda w: (w.start, w.end))
    if not windows:
        ax.text(0.5, 0.5, "no emotion windows", transform=ax.transAxes, ha="center", va="center", color="grey")
        return
    t = np.array([(w.start + w.end) / 2 for w in windows])
    neutral = np.array([w.neutral for w in windows], dtype=float)
    probs = np.array([w.probs for w in windows], dtype=float).T * (1.0 - neutral)  # the six share what neutral leaves
    ax.stackplot(t, np.vstack([probs, neutral]), colors=[EMOTION_COLOURS[e] for e in EKMAN6] + [NEUTRAL_COLOUR],
                 alpha=0.35, labels=[*EKMAN6, "neutral"], step=None, linewidth=0)
    va.axhline(0, color="black", lw=0.6, alpha=0.5)
    va.plot(t, [w.valence for w in windows], color="black", lw=2.2, label="valence")
    va.plot(t, [w.arousal for w in windows], color="#e6550d", lw=2.2, ls="--", label="arousal")
    handles = [Patch(color=EMOTION_COLOURS[e], alpha=0.5, label=e) for e in EKMAN6]
    handles.append(Patch(color=NEUTRAL_COLOUR, alpha=0.5, label="neutral"))
    handles += va.get_legend_handles_labels()[0]
    # right of the twin axis' label, which sits where a plain axis would put its legend
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.07, 1.0), fontsize=9, frameon=False)


def _boundary_panel(ax, timeline: Timeline) -> None:
    # the forecast is only kept where it drove the plan (lookahead 0): name it only when it is drawn
    what = "Boundaries by kind, tempo, and the cut forecast" if timeline.forecasts else "Boundaries by kind and tempo"
    ax.set_title(what, loc="left", fontsize=11)
    handles = []
    for kind in sorted({b.kind for b in timeline.boundaries}):
        colour = KIND_COLOURS.get(kind, "#999999")
        handles.append(Line2D([], [], color=colour, lw=2, label=f"{kind} ({_count(timeline.boundaries, kind)})"))
    for b in timeline.boundaries:
        colour = KIND_COLOURS.get(b.kind, "#999999")
        if b.start is not None and b.end is not None and b.end > b.start:
            ax.axvspan(b.start, b.end, color=colour, alpha=0.15, lw=0)
        ax.axvline(b.t, color=colour, lw=1.6, ls="-" if b.source == "detector" else ":")
    if timeline.tempo:
        ts = [p.t for p in timeline.tempo] + [max(timeline.duration, timeline.tempo[-1].t)]
        bpm = [p.bpm for p in timeline.tempo]
        ax.step(ts, bpm + bpm[-1:], where="post", color="#08519c", lw=1.8)
        handles.append(Line2D([], [], color="#08519c", lw=1.8, label="tempo (bpm)"))
        lo, hi = min(bpm), max(bpm)
        ax.set_ylim(lo - max(5, 0.15 * (hi - lo)), hi + max(5, 0.15 * (hi - lo)))
    else:
        ax.set_yticks([])
    ax.set_ylabel("tempo (bpm)")
    if timeline.forecasts:
        fc = ax.twinx()
        fts = [f.t for f in timeline.forecasts]
        fc.plot(fts, [f.probability_by(2.0) for f in timeline.forecasts], color="grey", lw=1, alpha=0.8)
        fc.set_ylim(0, 1)
        fc.set_ylabel("P(cut within 2 s)", color="grey")
        handles.append(Line2D([], [], color="grey", lw=1, label="P(cut within 2 s)"))
    if not timeline.boundaries:
        ax.text(0.5, 0.5, "no boundaries", transform=ax.transAxes, ha="center", va="center", color="grey",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8}, zorder=5)
    if handles:
        x = 1.07 if timeline.forecasts else 1.04
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(x, 1.0), fontsize=9, frameon=False)


def _count(boundaries: list[Boundary], kind: str) -> int:
    return sum(1 for b in boundaries if b.kind == kind)


def _piano_roll(ax, timeline: Timeline, notes: list[Note]) -> None:
    ax.set_title("Piano roll by instrument; ▼ chord onsets the generator reported", loc="left", fontsize=11)
    pitched = [n for n in notes if n.instrument != "drums"]
    lo = min((n.pitch for n in pitched), default=48) - 2
    hi = max((n.pitch for n in pitched), default=72) + 2
    drum_top = lo - 1  # drums get their own lane under the pitched notes: GM drum keys are not pitches
    drum_bottom = drum_top - DRUM_LANE
    names = sorted({n.instrument for n in notes}, key=_instrument_order)
    handles = []
    for i, name in enumerate(names):
        colour = INSTRUMENT_COLOURS.get(name, OTHER_COLOURS[i % len(OTHER_COLOURS)])
        mine = [n for n in notes if n.instrument == name]
        if name == "drums":
            ys = [drum_bottom + 0.5 + (n.pitch % DRUM_LANE) for n in mine]
            segs = [((n.start, y - 0.4), (n.start, y + 0.4)) for n, y in zip(mine, ys)]
            ax.add_collection(LineCollection(segs, colors=colour, linewidths=1.0, alpha=0.8))
        else:
            verts = [[(n.start, n.pitch - 0.4), (n.end, n.pitch - 0.4), (n.end, n.pitch + 0.4),
                      (n.start, n.pitch + 0.4)] for n in mine]
            alphas = np.clip([0.35 + 0.65 * n.velocity / 127 for n in mine], 0.2, 1.0)
            cols = [(*_rgb(colour), a) for a in alphas]
            ax.add_collection(PolyCollection(verts, facecolors=cols, edgecolors="none"))
        handles.append(Patch(color=colour, label=f"{name} ({len(mine)})"))
    if any(n.instrument == "drums" for n in notes):
        ax.axhspan(drum_bottom, drum_top, color="#eeeeee", zorder=0)
    for t in timeline.chords:
        ax.axvline(t, color="black", lw=0.5, alpha=0.25, zorder=0)
    if timeline.chords:
        ax.plot(timeline.chords, [hi + 1.0] * len(timeline.chords), "v", color="black", ms=6, clip_on=False)
        handles.append(Line2D([], [], marker="v", color="black", ls="none", label=f"chord onset ({len(timeline.chords)})"))
    bottom = drum_bottom if any(n.instrument == "drums" for n in notes) else lo
    ax.set_ylim(bottom, hi + 2.0)
    ticks = [p for p in range(lo, hi + 1) if p % 12 == 0]
    labels = [f"C{p // 12 - 1}" for p in ticks]
    if bottom < lo:
        ticks.append(drum_bottom + DRUM_LANE / 2)
        labels.append("drums")
    ax.set_yticks(ticks, labels)
    ax.set_ylabel("pitch")
    if not notes:
        ax.text(0.5, 0.5, "no notes", transform=ax.transAxes, ha="center", va="center", color="grey")
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.04, 1.0), fontsize=9, frameon=False)


def _instrument_order(name: str) -> tuple[int, str]:
    order = list(INSTRUMENT_COLOURS)
    return (order.index(name) if name in order else len(order), name)


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    h = hex_colour.lstrip("#")
    return tuple(int(h[i:i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]
