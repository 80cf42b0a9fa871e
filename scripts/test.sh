#!/usr/bin/env bash
# Set up (idempotent), then run the test suite; the exit code is pytest's, so
# "no tests collected" (5) fails like any other failure. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest -x --durations=15 "$@"
