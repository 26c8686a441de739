"""CPU cost of `cuecast live --video-out` at 720p30, next to the same live pipeline without it.

    python tools/bench_video_out.py ../shared/media [--seconds 30] [--rounds 2]

Each run is a real `cuecast live --source file:testvideo.mp4 --midi-out none --duration S -q` (S below the
clip's 24 s: a looped file source was seen to run its second pass unpaced, which is no live load)
(1280x720, 29.97 fps), with nothing more, with `--video-out out.mp4`, and with `--video-out udp://127.0.0.1:PORT`
(MPEG-TS; nobody listens, as with a receiver that has not started yet). The CPU time is the whole process
tree's (user + system, the sender process and every thread included, from wait4), per second of media
played: cores in use. The variants take turns, round after round, so the shared machine's load hits them
alike; the table gives each variant's median and its ratio to the run without --video-out.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIP = "testvideo.mp4"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def live_run(clip: Path, seconds: float, video_out: str | None) -> dict:
    cmd = [sys.executable, "-m", "cuecast.engine.cli", "live", "--source", f"file:{clip}",
           "--midi-out", "none", "--duration", str(seconds), "-q"]
    if video_out:
        cmd += ["--video-out", video_out]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {err[-600:]}")
    vo = re.search(r"video out: (\d+) pictures written, (\d+) dropped", err)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": wall,
            "pictures": int(vo.group(1)) if vo else 0, "dropped": int(vo.group(2)) if vo else 0}


def run(media_dir: str, seconds: float = 20.0, rounds: int = 2) -> list[dict]:
    clip = Path(media_dir) / CLIP
    if not clip.is_file():
        return []
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"live, no video out": None, "--video-out out.mp4": str(Path(tmp) / "out.mp4"),
                    "--video-out udp://127.0.0.1 (MPEG-TS)": f"udp://127.0.0.1:{free_udp_port()}"}
        results: dict[str, list[dict]] = {k: [] for k in variants}
        for _ in range(rounds):
            for name, target in variants.items():
                results[name].append(live_run(clip, seconds, target))
    base = statistics.median(r["cpu_s"] for r in results["live, no video out"]) / seconds
    rows = []
    for name, runs in results.items():
        cores = statistics.median(r["cpu_s"] for r in runs) / seconds
        rows.append({"variant": name, "runs": len(runs), "cores": round(cores, 3), "ratio": round(cores / base, 2),
                     "extra_cores": round(cores - base, 3), "pictures": max(r["pictures"] for r in runs),
                     "dropped": max(r["dropped"] for r in runs), "seconds": seconds})
    return rows


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "### Video out\n\n(no testvideo.mp4 in the media folder)"
    s = rows[0]["seconds"]
    lines = ["### Video out: CPU cost at 720p30 (tools/bench_video_out.py)", "",
             f"`cuecast live --source file:testvideo.mp4 --midi-out none --duration {s:g} -q` (1280x720, 29.97 fps, "
             "transformer, lookahead 3 s), with and without `--video-out` (H.264 veryfast CBR 2.8 Mb/s + AAC, the "
             "defaults). CPU = user + system of the whole process tree per media second (cores in use); variants "
             "take turns in one run, medians.", "",
             "| variant | runs | cores | ratio | extra cores | pictures out | dropped |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        pics = f"{r['pictures']}" if r["pictures"] else "–"
        lines.append(f"| {r['variant']} | {r['runs']} | {r['cores']:.3f} | {r['ratio']:.2f} | {r['extra_cores']:+.3f} "
                     f"| {pics} | {r['dropped'] if r['pictures'] else '–'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("media", nargs="?", default="../shared/media")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    print(markdown(run(a.media, a.seconds, a.rounds)))
