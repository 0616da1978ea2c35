#!/usr/bin/env bash
# Installs what deepiso needs on a Debian/Ubuntu machine: system packages
# (only those missing), a virtual environment in .venv, and the project in it.
#   scripts/setup.sh            engine + training + tests
# Sourced or run from the repository root or anywhere.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc         # venv, and PyAudio builds from source
  libsndfile1 ffmpeg                            # audio files; MP4 stems and other formats
  libportaudio2 portaudio19-dev                 # sounddevice and PyAudio
  pulseaudio pulseaudio-utils libasound2-plugins alsa-utils  # real audio server, virtual devices
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# constraints.txt pins the CPU build of PyTorch
if ! .venv/bin/python -m pip install -q -c constraints.txt -e ".[train,dev,pyaudio]" >.venv/pip.log 2>&1; then
  grep -v "is ignored: it is neither a file nor a directory" .venv/pip.log >&2
  echo "setup failed: pip could not install the project (log: .venv/pip.log)" >&2
  exit 1
fi
.venv/bin/python -c "import deepiso.realtime, deepiso.train" || {
  echo "setup failed: the project does not import" >&2; exit 1; }
