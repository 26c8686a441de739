"""Benchmarks and quality checks on real clips; writes BENCHMARKS.md.

    python tools/bench.py ../shared/media                 everything
    python tools/bench.py ../shared/media --only render   one section (render, cuts, emotion, music, live, video_out)

Each section compares side by side in the same run (ratios), since absolute times drift on a shared machine.
Sections other than `render` live in tools/bench_<area>.py (run(media_dir) -> rows, markdown(rows) -> str).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
SECTIONS = ("render", "cuts", "emotion", "music", "live", "video_out")


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"torch {torch.__version__} ({'CUDA' if torch.cuda.is_available() else 'CPU'}), PyAV {av.__version__}")


def decode_only(path: Path, width: int) -> float:
    """Wall seconds to decode and downscale every frame: the floor under any render."""
    from cuecast.streams.video import FileDecoder

    t = time.perf_counter()
    for _ in FileDecoder(path, analysis_width=width, audio=True):
        pass
    return time.perf_counter() - t


def render_clip(path: Path, generator: str = "arranger", lookahead: float | None = None) -> dict:
    from cuecast.engine.config import load_config
    from cuecast.engine.render import render
    from cuecast.engine.stages import set_torch_threads

    overrides = {"generator.backend": generator}
    if lookahead is not None:
        overrides["conductor.lookahead_s"] = lookahead
    cfg = load_config(None, overrides)
    set_torch_threads(cfg.runtime)  # as `cuecast render` does at its start (runtime.torch_threads, default 1)
    with tempfile.TemporaryDirectory() as out:
        res = render(path, out, cfg, progress=False)
        mp4 = Path(out) / "soundtrack.mp4"
        with av.open(str(mp4)) as c:
            vs, a_s = len(c.streams.video), len(c.streams.audio)
            a = c.streams.audio[0]
            samples = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(a)])
            audio_s = len(samples) / a.rate / a.channels
            rms = float(np.sqrt(np.mean(samples ** 2)))
        from cuecast.streams.midi_file import midi_length, stuck_notes

        mid = Path(out) / "soundtrack.mid"
        return {"result": res, "midi_s": midi_length(mid), "stuck": stuck_notes(mid), "mp4_streams": (vs, a_s),
                "audio_s": audio_s, "rms": rms}


def bench_render(media: Path, generator: str = "arranger") -> tuple[list[dict], str]:
    from cuecast.models.music.metrics import cut_alignment

    truth = json.loads((media / "cuts.json").read_text())["clips"]
    rows = []
    for name in sorted(truth):
        path = media / name
        if not path.exists():
            continue
        dec = decode_only(path, 320)
        r = render_clip(path, generator)
        res = r["result"]
        hard = truth[name]["hard"]
        align = cut_alignment(res.notes, hard, res.timeline.duration) if hard else {"hit_rate": float("nan"), "random_rate": float("nan")}
        if not hard:  # random moments anywhere: how often would a chord onset be near an arbitrary instant
            align = {**align, "random_rate": cut_alignment(res.notes, [], res.timeline.duration)["random_rate"]}
        rows.append({
            "clip": name, "media_s": round(res.timeline.duration, 2), "render_s": round(res.wall_s, 2),
            "x_realtime": round(res.timeline.duration / res.wall_s, 1), "decode_x_realtime": round(res.timeline.duration / dec, 1),
            "hard_cuts": len(hard), "hit_rate": align["hit_rate"], "random_rate": align["random_rate"],
            "midi_s": round(r["midi_s"], 2), "stuck": r["stuck"], "mp4": f"{r['mp4_streams'][0]}v+{r['mp4_streams'][1]}a",
            "audio_s": round(r["audio_s"], 2), "audio_rms": round(r["rms"], 4),
        })
        print(f"  {name}: {rows[-1]['x_realtime']}x real time, hit {align['hit_rate']:.2f}", file=sys.stderr)
    hits = [(r["hit_rate"], r["hard_cuts"]) for r in rows if r["hard_cuts"]]
    total_hit = sum(h * n for h, n in hits) / max(1, sum(n for _, n in hits))
    rnd = [r["random_rate"] for r in rows if r["random_rate"] == r["random_rate"]]
    md = [f"### Render ({generator}, default lookahead 3 s)", "",
          "`cuecast render` on each clip, outputs checked: MIDI length, stuck notes, MP4 streams and audio. "
          "`x real time` = media seconds / wall seconds for the whole render (decode, cuts, emotion, music, MIDI, "
          "FluidSynth audio, MP4 mux, report); `decode x` is decoding alone on the same clip in the same run.", "",
          "| clip | media s | render s | x real time | decode x | hard cuts | chord on cut (±100 ms) | chord at random | MIDI s | stuck | MP4 | audio s | audio RMS |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        md.append(f"| {r['clip']} | {r['media_s']} | {r['render_s']} | {r['x_realtime']} | {r['decode_x_realtime']} | "
                  f"{r['hard_cuts']} | {fmt(r['hit_rate'])} | {fmt(r['random_rate'])} | {r['midi_s']} | {r['stuck']} | "
                  f"{r['mp4']} | {r['audio_s']} | {r['audio_rms']} |")
    md += ["", f"All hard cuts: **{total_hit:.0%}** get a chord onset within ±100 ms (target ≥ 90%); random moments "
           f"≥ 0.5 s from cuts: mean **{np.mean(rnd):.0%}** (target ≤ 35%)."]
    big = [r for r in rows if r["clip"] == "testvideo.mp4"]
    if big:
        md.append(f"1280x720 render speed (testvideo.mp4): **{big[0]['x_realtime']}x** real time"
                  + (" (target ≥ 3x)." if generator == "arranger" else "."))
    return rows, "\n".join(md)


def fmt(x: float) -> str:
    return "–" if x != x else f"{x:.0%}"


def load_section(name: str):
    path = HERE / f"bench_{name}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("media", help="folder of real clips with cuts.json (e.g. ../shared/media)")
    ap.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections")
    ap.add_argument("-o", "--output", default=str(HERE.parent / "BENCHMARKS.md"))
    args = ap.parse_args()
    media = Path(args.media)
    if not (media / "cuts.json").is_file():
        print(f"bench: {media} has no cuts.json", file=sys.stderr)
        return 2
    sections = args.only or list(SECTIONS)
    parts = []
    for name in sections:
        print(f"[{name}]", file=sys.stderr)
        t = time.perf_counter()
        if name == "render":  # both backends: the transformer is the default, the arranger the light one
            md = "\n\n".join(bench_render(media, g)[1] for g in ("transformer", "arranger"))
        else:
            mod = load_section(name)
            if mod is None:
                md = f"### {name}\n\n(no tools/bench_{name}.py yet)"
            else:
                md = mod.markdown(mod.run(str(media)))
        parts.append((name, md + f"\n\n_section took {time.perf_counter() - t:.0f} s_"))
    write(Path(args.output), parts)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def write(path: Path, parts: list[tuple[str, str]]) -> None:
    """Replace the named sections in BENCHMARKS.md, keep the others from earlier runs."""
    old = path.read_text() if path.exists() else ""
    blocks = {}
    for chunk in old.split("\n<!-- section: ")[1:]:
        name, _, body = chunk.partition(" -->\n")
        blocks[name] = body.split("\n<!-- end -->")[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    stamp = f"_{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit or '?'}; {machine()}_"
    for name, md in parts:
        blocks[name] = f"{md}\n\n{stamp}"
    lines = ["# Benchmarks", "",
             "Produced by `python tools/bench.py ../shared/media` (sections: `--only NAME`). Each section notes "
             "when, on which commit and on which machine it ran. Speeds are compared side by side in one run.", ""]
    for name in list(SECTIONS) + [n for n in blocks if n not in SECTIONS]:  # hand-kept sections stay
        if name in blocks:
            lines += [f"<!-- section: {name} -->", blocks[name], "<!-- end -->", ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
