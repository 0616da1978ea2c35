#!/usr/bin/env bash
# Sets up deepiso on a fresh Debian/Ubuntu machine and runs the main job: live
# voice isolation with the built-in default model.
#   * with a desktop audio server (PulseAudio or PipeWire) running: the default
#     microphone, isolated, feeds the "deepiso" virtual microphone that call
#     apps can pick, until Ctrl-C (arguments go to `deepiso live`);
#   * with no audio server or sound card (or DEEPISO_DEMO=1): the bundled clip
#     is played through private virtual devices into the same live engine;
#     vocals, instrumental and a picture land in deepiso-demo/ (arguments go
#     to `deepiso demo`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" engine
cd "$ROOT"
if [ -z "${DEEPISO_DEMO:-}" ] && .venv/bin/python -c \
    "import sys; from deepiso.realtime.devices import pulse_running; sys.exit(0 if pulse_running() else 1)"; then
  .venv/bin/deepiso virtual-mic up
  exec .venv/bin/deepiso live --output deepiso "$@"
fi
exec .venv/bin/deepiso demo "$@"
