"""tools/packaged_clips.py: the calibration and held-out sets are split by package."""

import importlib.util
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "packaged_clips.py"


def test_sets_never_share_a_package():
    spec = importlib.util.spec_from_file_location("packaged_clips", TOOL)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    assert not {p for p, _, _ in m.CALIBRATION} & {p for p, _, _ in m.HELD_OUT}  # no scene on both sides
    assert len({path for _, path, _ in m.CALIBRATION + m.HELD_OUT}) == len(m.CALIBRATION + m.HELD_OUT)
