#!/usr/bin/env bash
# The GPU check in one short run (< 8 minutes on one GPU): install the GPU builds of
# Paddle and ONNX Runtime into .venv-gpu, then run on the GPU what runs there unchanged:
#   python -m bench.roofline --device gpu    FLOPs per window, the cuBLAS GEMM peak
#                                            (paddle.matmul, ORT CUDA; TF32 off and allowed),
#                                            each runtime's windows/s per batch against it
#   python -m bench.runtimes --device gpu    accuracy, |Δp| vs Paddle, invariance, windows/s
#   sensorstream evaluate --device gpu       on every runtime that reaches CUDA
#   python -m bench --device gpu             the whole bench, when a broker can be had
#                                            (Java and the cached Kafka jars, or
#                                            SENSORSTREAM_BOOTSTRAP)
# Every result and log goes under $OUT (default ./gpu-out); the script never writes into
# models/.
#
#   bash bench/gpu_check.sh [WHEEL_DIR]
#
# WHEEL_DIR (or $GPU_WHEELS) holds the wheels to install offline: paddlepaddle-gpu 3.x
# (from Paddle's index, e.g. https://www.paddlepaddle.org.cn/packages/stable/cu126/;
# PyPI stops at 2.6), onnxruntime-gpu, and the project's other dependencies. Without
# it, pip uses PyPI and Paddle's cu126 index.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
WHEELS="${1:-${GPU_WHEELS:-}}"
PADDLE_INDEX="${PADDLE_INDEX:-https://www.paddlepaddle.org.cn/packages/stable/cu126/}"
PY=.venv-gpu/bin/python
exec > >(tee "$OUT/gpu_check.log") 2>&1
started=$(date +%s)

step() {  # step NAME TIMEOUT_S COMMAND...: run, keep its output, note its exit code
  local name=$1 limit=$2
  shift 2
  echo "== $name ($(($(date +%s) - started)) s in)"
  timeout "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
  local rc=$?
  echo "$name rc=$rc" | tee -a "$OUT/status.txt"
  tail -n 40 "$OUT/$name.out"
  return 0
}

nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed: no NVIDIA driver here?"

if [ ! -x "$PY" ]; then
  python3 -m venv .venv-gpu
fi
# paddlepaddle and onnxruntime (CPU) would shadow the GPU builds' modules: the project
# goes in without its dependencies, and every dependency but those two after it.
mapfile -t deps < <("$PY" - <<'EOF'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
skip = {"paddlepaddle", "onnxruntime"}
for dep in project["dependencies"]:
    if re.split(r"[<>=!;\[ ]", dep, maxsplit=1)[0].strip() not in skip:
        print(dep)
EOF
)
pip_install() {
  if [ -n "$WHEELS" ]; then
    "$PY" -m pip install -q --no-index --find-links "$WHEELS" "$@"
  else
    "$PY" -m pip install -q "$@"
  fi
}
echo "== install ($(date -u +%H:%M:%S))"
pip_install "${deps[@]}" ml_dtypes || { echo "install of the dependencies failed"; exit 1; }
if [ -n "$WHEELS" ]; then
  pip_install paddlepaddle-gpu onnxruntime-gpu || { echo "GPU wheels missing in $WHEELS"; exit 1; }
else
  "$PY" -m pip install -q "paddlepaddle-gpu>=3.1,<4" -i "$PADDLE_INDEX" \
    || { echo "paddlepaddle-gpu install failed"; exit 1; }
  "$PY" -m pip install -q "onnxruntime-gpu>=1.23,<2" || { echo "onnxruntime-gpu failed"; exit 1; }
fi
"$PY" -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null \
  || "$PY" -m pip install -q --no-deps -e .
"$PY" -m pip list 2>/dev/null | grep -iE "paddle|onnx|openvino|numpy" >"$OUT/versions.txt"

step cuda_probe 60 "$PY" - <<'EOF'
import onnxruntime, paddle
print("paddle", paddle.__version__, "cuda", paddle.is_compiled_with_cuda(),
      "gpus", paddle.device.cuda.device_count())
print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
paddle.utils.run_check()
EOF

export SENSORSTREAM_DATA="${SENSORSTREAM_DATA:-$PWD/shared/data/uwave}"
step roofline 180 "$PY" -m bench.roofline --device gpu --json "$OUT/roofline.json"
step runtimes 120 "$PY" -m bench.runtimes --device gpu --json "$OUT/runtimes.json"
for runtime in onnxruntime paddle; do
  step "evaluate_$runtime" 45 .venv-gpu/bin/sensorstream evaluate --model models/uwave \
    --data "$SENSORSTREAM_DATA/UWaveGestureLibrary_TEST.ts" --device gpu --runtime "$runtime" \
    --report-dir "$OUT/evaluate_$runtime" --json
done
if [ -n "${SENSORSTREAM_BOOTSTRAP:-}" ] || { command -v java >/dev/null && ls ~/.cache/sensorstream/kafka/*/lib/*.jar >/dev/null 2>&1; }; then
  step bench 150 "$PY" -m bench --device gpu --quick --json "$OUT/bench.json"
else
  echo "bench: skipped (no broker: no java or no cached Kafka jars, and no SENSORSTREAM_BOOTSTRAP)" \
    | tee -a "$OUT/status.txt"
fi
echo "done in $(($(date +%s) - started)) s; results in $OUT"
