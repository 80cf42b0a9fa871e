#!/usr/bin/env bash
# The main job on a fresh machine: install, start a local Kafka, run the worker on
# the shipped model and stream the UWave test set through it (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sensorstream demo "$@"
