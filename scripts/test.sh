#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian/Ubuntu machine and runs
# the whole suite (lint included). Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh" dev
cd "$ROOT"
.venv/bin/python -m ruff check .
exec .venv/bin/python -m pytest -q "$@"
