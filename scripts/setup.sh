#!/usr/bin/env bash
# Installs what deepiso needs on a Debian/Ubuntu machine: system packages
# (only those missing), a virtual environment in .venv, and the project in it.
#   scripts/setup.sh engine   the live engine and the demo (no PyTorch)
#   scripts/setup.sh dev      everything: engine, training, corpus tools, tests
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE="${1:-dev}"

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc         # venv, and PyAudio builds from source
  libsndfile1 ffmpeg                            # audio files; MP4 stems and other formats
  libportaudio2 portaudio19-dev                 # sounddevice and PyAudio
  pulseaudio pulseaudio-utils libasound2-plugins alsa-utils  # real audio server, virtual devices
)
EXTRAS="pyaudio,plot"
if [ -S "${PIPEWIRE_RUNTIME_DIR:-${XDG_RUNTIME_DIR:-/run/user/$(id -u)}}/pipewire-0" ]; then
  APT_PACKAGES+=(pipewire-jack)   # PipeWire runs here: the live engine joins its graph (--backend jack)
fi
if [ "$MODE" = "dev" ]; then
  APT_PACKAGES+=(
    dpkg-dev fluidsynth fluid-soundfont-gm timgm6mb-soundfont   # corpus: packages, MIDI rendering
    espeak-ng flite festival festvox-us-slt-hts festvox-kallpc16k festvox-italp16k festvox-itapc16k  # voices
    pipewire pipewire-pulse pipewire-jack wireplumber dbus      # the tests' private PipeWire server
  )
  EXTRAS="train,dev,pyaudio,plot,bench"
elif [ "$MODE" != "engine" ]; then
  echo "usage: scripts/setup.sh [engine|dev]" >&2
  exit 2
fi

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
# pip runs only when what it installs from changed: the stamp holds a hash of the
# dependency files and the mode, and is written after a complete install.
STAMP=".venv/.deepiso-setup-$MODE"
WANT="$(cat setup.cfg pyproject.toml constraints.txt 2>/dev/null | sha256sum | cut -d' ' -f1) $MODE $EXTRAS"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || [ ! -x .venv/bin/deepiso ]; then
  rm -f "$STAMP"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # constraints.txt pins the CPU build of PyTorch
  if ! .venv/bin/python -m pip install -q -c constraints.txt -e ".[$EXTRAS]" >.venv/pip.log 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" .venv/pip.log >&2
    echo "setup failed: pip could not install the project (log: .venv/pip.log)" >&2
    exit 1
  fi
  if [ "$MODE" = "dev" ] && ! .venv/bin/python -m pip show -q openunmix >/dev/null 2>&1; then
    # Open-Unmix (a quality-benchmark peer) declares torchaudio, which has no build for
    # the pinned torch; its model code needs only torch, so it is installed without it.
    .venv/bin/python -m pip install -q --no-deps "openunmix==1.3.0" >>.venv/pip.log 2>&1 || {
      echo "setup failed: could not install openunmix (log: .venv/pip.log)" >&2; exit 1; }
  fi
  echo "$WANT" > "$STAMP"
fi
.venv/bin/python -c "import deepiso.realtime" || {
  echo "setup failed: the project does not import" >&2; exit 1; }
