"""The online cut detector on synthetic clips with boundaries at known times."""

import numpy as np
import pytest
import torch

from cuecast.models.cuts.config import CutConfig
from cuecast.models.cuts.detector import OnlineCutDetector, pick_device
from cuecast.testmedia.cuts import Shot, render, write_video
from cuecast.types import Frame

FPS = 25.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def detect(imgs, times, cfg=None, fast_path=True):
    det = OnlineCutDetector(cfg or CutConfig(device="cpu"), fast_path=fast_path)
    out = []
    for i, (im, t) in enumerate(zip(imgs, times)):
        for b in det.process_frame(Frame(t=t, index=i, image=im)):
            assert b.decided_at == t  # decided on the frame being processed
            out.append(b)
    return out + det.flush()


def assert_hard_cuts(out, truth_hard, times):
    hard = [b for b in out if b.kind == "hard"]
    assert len(hard) == len(truth_hard), [b.to_json() for b in out]
    step = np.diff(times).max()
    for b, t in zip(hard, truth_hard):
        assert abs(b.t - t) < 1e-6, (b.t, t)  # the first frame of the new shot, exactly
        assert b.decided_at <= t + step + 1e-6  # at most one frame after the cut
        assert b.source == "detector"


def test_hard_cuts_with_motion_within_one_frame():
    shots = [Shot(1.6, seed=1), Shot(1.2, pan=(1.0, 0.5), seed=2), Shot(1.5, mover=3, seed=3),
             Shot(0.8, seed=4), Shot(1.4, pan=(-0.5, 0), seed=5)]
    imgs, times, truth = render(shots, fps=FPS)
    out = detect(imgs, times)
    assert_hard_cuts(out, truth["hard"], times)
    assert all(b.kind == "hard" for b in out)


def test_dropped_frames_and_offset_timestamps():
    imgs, times, truth = render([Shot(1.5, seed=7), Shot(1.5, pan=(1, 0), seed=8), Shot(1.5, seed=9)], fps=FPS)
    keep = [i for i in range(len(imgs)) if i % 3 != 2]  # every third frame dropped: variable frame rate
    imgs = [imgs[i] for i in keep]
    times = [times[i] + 7.25 for i in keep]  # and media time that does not start at zero
    out = detect(imgs, times)
    # a cut that fell on a dropped frame shows at the next frame that exists
    expect = [min(t for t in times if t >= c + 7.25 - 1e-9) for c in truth["hard"]]
    assert_hard_cuts(out, expect, times)


@pytest.mark.parametrize("fast_path", [True, False])
def test_a_change_of_picture_size_is_a_cut_not_a_crash(fast_path):
    """A stream whose sender switches resolution (or source) mid-stream: frames of two sizes cannot be
    compared; the switch is a boundary and detection goes on at the new size."""
    import cv2

    imgs, times, truth = render([Shot(1.5, seed=1), Shot(1.5, seed=2)], fps=FPS)
    switch = len(imgs) // 3  # inside the first shot: the picture itself does not change there
    # a new aspect ratio (the analysis picture has a fixed width, so only the height tells)
    resized = [im if i < switch else cv2.resize(im, (im.shape[1], im.shape[0] * 4 // 3)) for i, im in enumerate(imgs)]
    out = detect(resized, times, fast_path=fast_path)
    assert_hard_cuts(out, sorted([times[switch], *truth["hard"]]), times)


@pytest.mark.parametrize("flash_frames", [1, 2, 3])
def test_flashes_are_not_cuts(flash_frames):
    shots = [Shot(2.0, flashes=[0.6, 1.4], flash_frames=flash_frames, seed=11),
             Shot(2.0, flashes=[1.0], flash_frames=flash_frames, pan=(0.5, 0), seed=12)]
    imgs, times, truth = render(shots, fps=FPS)
    out = detect(imgs, times)
    assert_hard_cuts(out, truth["hard"], times)
    assert len(out) == 1


def test_brightness_ramps_pans_and_fast_motion_are_not_cuts():
    shots = [Shot(2.0, ramp=0.9, seed=21), Shot(2.0, ramp=-0.6, pan=(2, 0), seed=22),
             Shot(2.0, pan=(4, 1), seed=23), Shot(2.0, mover=9, seed=24), Shot(2.0, pan=(0, -2), seed=25)]
    imgs, times, truth = render(shots, fps=FPS)
    out = detect(imgs, times)
    assert_hard_cuts(out, truth["hard"], times)
    assert len(out) == len(truth["hard"])


def test_flat_frames_ramping_are_not_boundaries():
    # uniform grey going black -> white -> black (a test card fading): nothing to cut between
    levels = np.concatenate([np.linspace(0, 255, 40), np.linspace(255, 0, 40), np.zeros(10), np.linspace(0, 200, 30)])
    imgs = [np.full((90, 160, 3), int(v), np.uint8) for v in levels]
    times = [i / FPS for i in range(len(imgs))]
    assert detect(imgs, times) == []


def in_interval(b, start, end, slack=0.25):
    return start - slack <= b.t <= end + slack


def test_fades_and_dissolves_are_boundaries():
    shots = [Shot(2.0, exit_fade_s=0.8, seed=31), Shot(0.6, seed=0),  # fade out, then a black gap
             Shot(2.0, enter="fade_in", enter_s=0.8, seed=32),
             Shot(2.5, enter="dissolve", enter_s=1.0, seed=33),
             Shot(2.5, enter="dissolve", enter_s=0.6, pan=(0.5, 0), seed=34)]
    imgs, times, truth = render(shots, fps=FPS)
    black = slice(int(2.0 * FPS), int(2.6 * FPS))  # make the gap shot black
    for k in range(black.start, black.stop):
        imgs[k] = np.zeros_like(imgs[k])
    truth["hard"].remove(2.0)  # the gap starts where the fade ends: no cut of its own
    out = detect(imgs, times)
    gradual = [(s, e, k) for s, e, k in truth["gradual"]]
    assert len(out) == len(gradual) == 4, [b.to_json() for b in out]
    for b, (s, e, kind) in zip(out, gradual):
        assert b.kind == kind, (b.to_json(), s, e, kind)
        assert in_interval(b, s, e), (b.to_json(), s, e)
        assert b.start is not None and b.end is not None and b.start < b.end
        assert b.decided_at >= b.end  # decided once the transition is over


def test_dip_to_black_is_one_boundary():
    imgs, times, truth = render([Shot(2.0, exit_fade_s=0.5, seed=41), Shot(2.0, enter="fade_in", enter_s=0.5, seed=42)])
    out = detect(imgs, times)
    assert len(out) >= 1 and all(b.kind in ("fade", "hard") for b in out)
    assert all(1.4 <= b.t <= 2.8 for b in out)


def test_whole_file_path(tmp_path):
    from cuecast.streams.video import FileDecoder

    imgs, times, truth = render([Shot(1.2, seed=51), Shot(1.0, pan=(1, 0), seed=52), Shot(1.2, seed=53)],
                                fps=FPS, size=(320, 180))
    path = tmp_path / "clip.mp4"
    write_video(path, imgs, fps=FPS)
    det = OnlineCutDetector(CutConfig(device="cpu"))
    out = []
    for item in FileDecoder(path, analysis_width=160, audio=False):
        if isinstance(item, Frame):
            out += det.process_frame(item)
    out += det.flush()
    assert [round(b.t, 3) for b in out] == [round(t, 3) for t in truth["hard"]]


def test_min_shot_spacing():
    imgs, times, truth = render([Shot(1.0, seed=61), Shot(0.2, seed=62), Shot(1.0, seed=63)])
    out = detect(imgs, times, CutConfig(device="cpu", min_shot_s=0.4))
    assert [b.t for b in out] == [truth["hard"][0]]


def test_device_choice():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            pick_device("cuda")


def test_tensor_path_matches_the_cpu_fast_path():
    """The tensor code (what a GPU runs) and the CPU's numpy/OpenCV path find the same boundaries."""
    shots = [Shot(1.2, seed=51), Shot(1.4, pan=(1.0, 0.5), seed=52), Shot(1.5, flashes=[0.5], seed=53),
             Shot(2.0, enter="dissolve", enter_s=0.8, seed=54), Shot(1.5, mover=3, seed=55),
             Shot(1.6, exit_fade_s=0.6, seed=56), Shot(1.5, enter="fade_in", enter_s=0.6, seed=57)]
    imgs, times, _ = render(shots, fps=FPS)
    fast = [(b.t, b.kind) for b in detect(imgs, times)]
    slow = [(b.t, b.kind) for b in detect(imgs, times, fast_path=False)]
    assert {"hard", "dissolve", "fade"} <= {k for _, k in fast}
    assert [k for _, k in fast] == [k for _, k in slow]
    assert np.allclose([t for t, _ in fast], [t for t, _ in slow])


def test_large_frames_take_the_strided_downscale():
    """Frames 8x the analysis width or more are downscaled from every step-th row: cuts stay exact."""
    from cuecast.models.cuts.detector import downscale

    shots = [Shot(1.2, seed=71), Shot(1.0, pan=(2.0, 1.0), seed=72), Shot(1.2, mover=6, seed=73)]
    imgs, times, truth = render(shots, fps=FPS, size=(640, 360))
    assert downscale(imgs[0], 64).shape == (36, 64, 3)
    assert_hard_cuts(detect(imgs, times), truth["hard"], times)
    tall = np.zeros((1280, 720, 3), np.uint8)
    tall[-128:] = 255  # the bottom tenth of a portrait frame must survive the row stride
    assert downscale(tall, 64)[-10:].mean() > 0.9


@pytest.mark.parametrize("flashes", [False, True])
def test_hard_candidate_is_offered_on_the_cut_frame_before_confirmation(flashes):
    """Lookahead 0 acts on the candidate: offered on the cut's own frame, never for a flash."""
    fl = dict(flashes=[0.6], flash_frames=2) if flashes else {}
    shots = [Shot(1.2, seed=1, **fl), Shot(1.2, seed=2, **fl), Shot(1.2, seed=3)]
    imgs, times, truth = render(shots, fps=FPS)
    det = OnlineCutDetector(CutConfig(device="cpu"))
    offered, confirmed = [], []
    for i, (im, t) in enumerate(zip(imgs, times)):
        confirmed += [b.t for b in det.process_frame(Frame(t=t, index=i, image=im)) if b.kind == "hard"]
        if det.hard_candidate(t) is not None:
            offered.append(t)
    assert offered == pytest.approx(truth["hard"]) and confirmed == pytest.approx(truth["hard"])
