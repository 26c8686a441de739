"""timeline.json: what the engine decided (cuts, emotion windows, tempo, chord onsets), for people and scripts."""

from __future__ import annotations

import json
from pathlib import Path

from cuecast import __version__
from cuecast.streams.files import replacing
from cuecast.types import Timeline

SCHEMA = 1


def timeline_json(tl: Timeline, **meta) -> dict:
    head = {k: v for k, v in tl.meta.items() if k in ("input", "generator", "seed", "lookahead_s")}
    out = {
        "schema": SCHEMA,
        "cuecast": __version__,
        **head,
        **meta,
        "duration": round(tl.duration, 4),
        "cuts": [b.to_json() for b in sorted(tl.boundaries, key=lambda b: b.t)],
        "emotion": [w.to_json() for w in tl.emotion],
        "tempo": [{"t": round(p.t, 4), "bpm": round(p.bpm, 3)} for p in tl.tempo],
        "chords": [round(t, 4) for t in tl.chords],
    }
    if tl.forecasts:
        out["forecasts"] = [
            {"t": round(f.t, 4), "next": round(f.most_likely()[0], 4), "p": round(f.most_likely()[1], 4)}
            for f in tl.forecasts
        ]
    out["meta"] = {k: v for k, v in tl.meta.items() if k not in head and isinstance(v, (int, float, str, bool))}
    return out


def write_json(path: Path, data: dict) -> None:
    """Write atomically so a half-written file never carries the final name."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
