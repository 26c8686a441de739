#!/usr/bin/env bash
# Install cuecast into a virtual environment in the checkout (.venv/), with what it needs on Debian/Ubuntu.
#   tools/install.sh          the package, FluidSynth and a GM soundfont (enough for `cuecast demo`)
#   tools/install.sh --test   also what the test suite drives for real: JACK, mosquitto, Chromium, Debian MIDI
# Afterwards run cuecast as .venv/bin/cuecast (or `source .venv/bin/activate`).
#
# Why a venv: Debian 12 and Ubuntu 23.04+ refuse `pip install` into the system Python (PEP 668); a venv
# works there and on pyenv/conda machines alike. CUECAST_VENV picks another folder, CUECAST_PYTHON
# another interpreter (>= 3.11), CUECAST_TORCH another torch requirement.
# Other systems: macOS `brew install fluid-synth`; Windows: FluidSynth's release zip with its bin/ on
# PATH; then `python3 -m venv .venv` and `.venv/bin/pip install -e .` (Windows: .venv\Scripts\pip).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${CUECAST_VENV:-.venv}"
python="${CUECAST_PYTHON:-python3}"
apt_packages=(fluidsynth libfluidsynth3 fluid-soundfont-gm libportaudio2 libjack-jackd2-0 python3-venv)
extra=".[live]"
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

if [[ ! -x "$venv/bin/python" ]]; then
  echo "making a virtual environment in $venv"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
# The CPU build of torch; a plain `pip install torch` on Linux pulls a multi-GB CUDA build.
"$py" -c "import torch" 2>/dev/null || "$py" -m pip install -q "${CUECAST_TORCH:-torch==2.13.0}"
"$py" -m pip install -q -e "$extra"
echo "cuecast installed: $venv/bin/cuecast"
