"""CPU cost of the emotion stage per media second, on the real clips, decode excluded.

    python tools/bench_emotion.py /work/shared/media

Frames are decoded first at the engine's analysis width (320 px), then fed to the estimator while the
process CPU time (all threads: numpy, OpenCV, torch) is measured. Configurations side by side: the
picture alone, picture + sound, and the full stage with faces. The budget is a quarter of one core for
live 720p30 input (testvideo.mp4 is 1280x720 at 29.97 fps): "core share" must stay below 0.25.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cuecast.models.emotion.config import EmotionConfig  # noqa: E402
from cuecast.models.emotion.estimator import EmotionEstimator  # noqa: E402
from cuecast.streams.video import FileDecoder  # noqa: E402
from cuecast.types import Frame  # noqa: E402

CLIPS = ("testvideo.mp4", "issue-195-aspect-ratio.mp4", "goldeneye-vfr-drop3.mp4")
CONFIGS = {
    "picture": dict(faces=False, audio=False),
    "picture+audio": dict(faces=False, audio=True),
    "full (faces, audio)": dict(faces=True, audio=True),
}
BUDGET = 0.25


def measure(items, cfg: EmotionConfig) -> tuple[float, int]:
    est = EmotionEstimator(cfg)
    c0 = time.process_time()
    n = 0
    for it in items:
        if isinstance(it, Frame):
            n += len(est.process_frame(it))
        else:
            est.process_audio(it)
    n += len(est.flush())
    return time.process_time() - c0, n


def run(media_dir: str) -> list[dict]:
    rows = []
    for name in CLIPS:
        path = Path(media_dir) / name
        if not path.is_file():
            continue
        src = FileDecoder(path, analysis_width=320, audio=True)
        items = list(src)
        frames = [it for it in items if isinstance(it, Frame)]
        media_s = frames[-1].t - frames[0].t + 1.0 / src.info.fps
        EmotionEstimator(EmotionConfig(faces=True)).process_frame(frames[0])  # warm-up (model load, first calls)
        for label, kw in CONFIGS.items():
            cpu, windows = measure(items, EmotionConfig(**kw))
            rows.append({"clip": name, "source": f"{src.info.width}x{src.info.height}@{src.info.fps:.2f}",
                         "config": label, "frames": len(frames), "media_s": round(media_s, 2),
                         "windows": windows, "cpu_s": round(cpu, 3), "ms_per_frame": round(1000 * cpu / len(frames), 2),
                         "core_share": round(cpu / media_s, 4), "within_budget": cpu / media_s < BUDGET})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [f"Emotion stage CPU cost (decode excluded; budget {BUDGET} of a core for live 720p30)", "",
             "| clip | source | config | frames | windows | ms/frame | core share | within budget |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['source']} | {r['config']} | {r['frames']} | {r['windows']} | "
                     f"{r['ms_per_frame']:.2f} | {r['core_share']:.3f} | {'yes' if r['within_budget'] else 'NO'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(run(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/media")))
