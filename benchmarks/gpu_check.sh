#!/usr/bin/env bash
# The GPU check (`make gpu-check`), for a machine with a CUDA GPU; about 8 minutes with one GPU and 16 cores:
#   1. stops at once, in one line and with status 2, where torch or TensorFlow sees no CUDA GPU;
#   2. the parity checks of every model on the GPU in float64 and float32 (TF32 off on both sides), digits preset;
#   3. one short training run per model, backend and precision (float32, bfloat16) with --device cuda;
#   4. train-step images/s of every model, backend and precision on the GPU against the same machine's CPU.
# Prints one report (the device names, the parity verdict, the runs, the throughput table) and writes everything
# under $GPU_CHECK_OUT (default runs/gpu-check); exit status 1 when a check or a run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BIN=$(dirname "$PYTHON")
OUT=${GPU_CHECK_OUT:-runs/gpu-check}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

TF_CPP_MIN_LOG_LEVEL=3 "$PYTHON" - <<'EOF' || exit 2
import sys

import torch  # before TensorFlow (parity/import_order.py)
import torch._dynamo  # noqa: F401

from specs.logs import native_notices_dropped

problems = []
if not torch.cuda.is_available():
    build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "built for the CPU only"
    problems.append(f"torch {torch.__version__} sees no CUDA GPU ({build})")
with native_notices_dropped():  # TensorFlow's start-up notices
    import tensorflow as tf

if not tf.config.list_physical_devices("GPU"):
    build = "built with CUDA" if tf.test.is_built_with_cuda() else "built for the CPU only"
    problems.append(f"TensorFlow {tf.__version__} sees no GPU ({build})")
if problems:
    print("gpu-check: error: " + "; ".join(problems) + ". Run it on a machine with an NVIDIA GPU and its driver "
          "(nvidia-smi lists it).", file=sys.stderr)
    sys.exit(2)
print(f"gpu-check: torch {torch.__version__} on {torch.cuda.get_device_name(0)}; TensorFlow {tf.__version__} on "
      f"{tf.config.experimental.get_device_details(tf.config.list_physical_devices('GPU')[0]).get('device_name')}")
EOF

rm -rf "$OUT" && mkdir -p "$OUT/runs"
status=0
start=$SECONDS

# 2. Parity on the GPU, in the background while the runs train.
"$BIN/gan-parity" check dcgan wgan_gp cgan --preset digits --dtype float64 float32 --device cuda \
    > "$OUT/parity.txt" 2>&1 &
parity=$!

# 3. One short run per model, backend and precision (the fake data set: 4 steps of 64).
for model in dcgan wgan_gp cgan; do
    for backend in torch keras; do
        for precision in float32 bfloat16; do
            run="$OUT/runs/$backend-$model-$precision"
            if "$BIN/gan-$backend" train "$model" --dataset fake --epochs 1 --device cuda --precision "$precision" \
                    --out "$run" > "$run.log" 2>&1; then
                where=$(grep -o "training on .*" "$run.log" | head -1)
                echo "gpu-check: $backend $model $precision: ok ($where); last losses: $(tail -1 "$run/losses.csv")"
            else
                echo "gpu-check: $backend $model $precision: FAILED, see $run.log"
                status=1
            fi
        done
    done
done

if wait "$parity"; then
    echo "gpu-check: parity on the GPU: $(tail -1 "$OUT/parity.txt")"
else
    echo "gpu-check: parity on the GPU FAILED: $(tail -1 "$OUT/parity.txt") (all rows in $OUT/parity.txt)"
    grep "FAIL" "$OUT/parity.txt" | head -20
    status=1
fi

# 4. Throughput: each model, backend and precision on the GPU against this machine's CPU.
if "$PYTHON" benchmarks/throughput.py --presets digits --devices cpu cuda --precisions float32 bfloat16 \
        --variants --steps 10 --warmup 3 > "$OUT/throughput.md" 2> "$OUT/throughput.log"; then
    cat "$OUT/throughput.md"
else
    echo "gpu-check: the throughput benchmark FAILED, see $OUT/throughput.log"
    status=1
fi
grep -q "^Failures:" "$OUT/throughput.md" 2>/dev/null && status=1
echo "gpu-check: done in $(((SECONDS - start) / 60)) min, status $status; everything is in $OUT"
exit $status
