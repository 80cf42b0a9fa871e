#!/usr/bin/env bash
# Idempotent set-up. `setup.sh` (what the demo runs): Java 17+ and Maven for the local
# Kafka broker, the .venv, and the project installed editable. `setup.sh --dev` (what the
# tests and CI run): also Prometheus (promtool) and Chromium, and the dev extra.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
case "${1:-}" in
  --dev) dev=1 ;;
  "") ;;
  *) echo "usage: setup.sh [--dev]" >&2; exit 2 ;;
esac

apt_install() {
  # Only reached when a tool is missing, so a prepared machine never needs root or network.
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: $* missing and no apt-get here: install them yourself (Java 17+ and Maven; for --dev also Prometheus (promtool) and Chromium)" >&2
    exit 1
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

packages=()
command -v java >/dev/null 2>&1 || packages+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || packages+=(maven)
if [ "$dev" -eq 1 ]; then
  # Debian's prometheus package ships promtool (rule checks and unit tests) and the server.
  command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
  # The status page test renders the page in Debian's headless Chromium.
  command -v chromium >/dev/null 2>&1 || packages+=(chromium)
fi
if [ "${#packages[@]}" -gt 0 ]; then
  apt_install "${packages[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "setup.sh: python3 is older than 3.10; install Python 3.10+" >&2; exit 1; }
  python3 -m venv .venv
fi

# Reinstall only when pyproject.toml changed: an editable build fetches setuptools
# into an isolated env each time, which costs seconds and needs the network. The stamp
# says whether the dev extra is in; a dev install serves the demo too.
stamp=.venv/.sensorstream-installed
base="$(sha256sum pyproject.toml | cut -d' ' -f1) $(pwd)"
found="$(cat "$stamp" 2>/dev/null || true)"
if [ "$dev" -eq 1 ] && [ "$found" != "$base dev" ]; then
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$base dev" > "$stamp"
elif [ "$dev" -eq 0 ] && [ "$found" != "$base dev" ] && [ "$found" != "$base" ]; then
  .venv/bin/python -m pip install -q -e .
  echo "$base" > "$stamp"
fi
