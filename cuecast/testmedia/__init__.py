"""Test media: synthetic clips with known cuts, fades and dissolves (video.py: shots to an MP4 with
make_test_video; cuts.py: frame-exact boundaries, flashes, pans and ramps). For tests, `cuecast demo` and
the tools' sanity checks; the engine never imports it."""
