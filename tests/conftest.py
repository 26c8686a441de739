"""Shared fixtures: synthetic clips made with PyAV, with cuts at known times."""

import pytest
import torch

from cuecast.testmedia.video import make_test_video


@pytest.fixture(scope="session")
def cut_clip(tmp_path_factory):
    """12 s, 25 fps, 320x180, five shots of different colour and motion, a tone track; returns (path, cuts)."""
    path = tmp_path_factory.mktemp("clips") / "cuts.mp4"
    shots = [(2.4, (220, 180, 120), 1.0), (2.0, (40, 50, 90), 0.0), (2.8, (210, 40, 40), 8.0),
             (1.6, (120, 200, 230), 2.0), (3.2, (240, 220, 90), 3.0)]
    cuts = make_test_video(path, shots, fps=25, size=(320, 180), audio_hz=330.0)
    return path, cuts


@pytest.fixture(scope="session")
def fluidsynth():
    """FluidSynth (pyfluidsynth + libfluidsynth) for tests that render audio; skipped, saying why, without it."""
    from cuecast.streams.audio_render import SynthUnavailable, load_fluidsynth

    try:
        load_fluidsynth()
    except SynthUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def one_torch_thread():
    """The engine's default (runtime.torch_threads = 1): tiny per-frame tensors run far faster on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
