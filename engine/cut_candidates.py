"""What the engine reads of the hard-cut detector's open candidate, for lookahead 0.

OnlineCutDetector confirms a hard cut on the frame after it (the next frame tells a cut from a flash). At
lookahead 0 that frame arrives a frame too late for the chord, so the engine acts on the candidate itself.
Only candidates that do not look like a flash are taken: those are the ones the detector may hold for
several frames, and on the real clips in ../shared/media every other candidate was confirmed. The detector
has no public API for its candidate yet, so this module is the one place that reads its internals.
"""

from __future__ import annotations

from cuecast.models.cuts.detector import OnlineCutDetector, _flash_like
from cuecast.types import Frame


def hard_cut_candidate(detector: OnlineCutDetector, frame: Frame) -> float | None:
    """The time of a hard-cut candidate the detector opened on this frame (its first frame), unless flash-like."""
    pending = detector.hard.pending
    if pending is None:
        return None
    before, candidate, _ = pending
    if candidate.t != frame.t or _flash_like(before, candidate):
        return None
    last = detector.last_t  # the detector reports no two boundaries closer than min_shot_s: neither do we
    if last is not None and candidate.t - last < detector.cfg.min_shot_s:
        return None
    return candidate.t


def hard_cut_pending(detector: OnlineCutDetector) -> bool:
    """True while the detector still has a hard-cut candidate to decide."""
    return detector.hard.pending is not None
