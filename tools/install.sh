#!/usr/bin/env bash
# Install cuecast and what it needs on Debian/Ubuntu.
#   tools/install.sh          the package, FluidSynth and a GM soundfont (enough for `cuecast demo`)
#   tools/install.sh --test   also what the test suite drives for real: JACK, mosquitto, Chromium, Debian MIDI
# Other systems: install FluidSynth yourself (macOS: `brew install fluid-synth`; Windows: FluidSynth's
# release zip, its bin/ on PATH), then `pip install -e .`.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(fluidsynth libfluidsynth3 fluid-soundfont-gm libportaudio2)
extra="."
if [[ "${1:-}" == "--test" ]]; then
  apt_packages+=(jackd2 jack-tools mosquitto chromium iproute2 mma openttd-openmsx freedink-data planetblupi-music-midi)
  extra=".[test]"
fi

if command -v apt-get >/dev/null; then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  missing=()
  for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    echo "installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "no apt-get: install FluidSynth and a GM soundfont with your package manager for audio output" >&2
fi

python3 -m pip --version >/dev/null
# The CPU build of torch; a plain `pip install torch` on Linux pulls a multi-GB CUDA build.
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q "${CUECAST_TORCH:-torch==2.13.0}"
python3 -m pip install -q -e "$extra"
echo "cuecast installed: $(command -v cuecast)"
