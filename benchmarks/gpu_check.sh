#!/usr/bin/env bash
# GPU check (issue 9), on a machine with an NVIDIA GPU, in under 8 minutes:
#
#     bash benchmarks/gpu_check.sh            # PYTHON=... and DATA_DIR=... to override
#
# 1. TensorFlow must see a GPU (the script stops otherwise);
# 2. the micro-benchmarks: supernet step overhead and first trace, prediction throughput;
# 3. a short MNIST search in float32, then in mixed precision, each printing images per
#    second of supernet training and of final training;
# 4. GPU utilisation and memory, sampled every 2 s by nvidia-smi while it ran.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA_DIR=${DATA_DIR:-../shared/datasets}
export TF_CPP_MIN_LOG_LEVEL=2
started=$(date +%s)

UTIL_LOG=$(mktemp)
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -l 2 > "$UTIL_LOG" &
    UTIL_PID=$!
    trap 'kill $UTIL_PID 2> /dev/null || true' EXIT
fi

"$PYTHON" -c "
import tensorflow as tf
gpus = tf.config.list_physical_devices('GPU')
print('TensorFlow', tf.__version__, 'sees', [g.name for g in gpus])
assert gpus, 'TensorFlow sees no GPU: check the driver and that tensorflow[and-cuda] is installed.'
"
echo "== supernet step overhead and first trace"
timeout 150 "$PYTHON" -m benchmarks.supernet_overhead --children 4 --repeats 20
echo "== prediction throughput, exported against bare"
timeout 90 "$PYTHON" -m benchmarks.predict_throughput --children 2 --images 16384
echo "== short MNIST search, float32"
timeout 100 "$PYTHON" -m benchmarks.gpu_throughput --data-dir "$DATA_DIR"
echo "== short MNIST search, mixed precision"
timeout 100 "$PYTHON" -m benchmarks.gpu_throughput --data-dir "$DATA_DIR" --mixed-precision

if [ -s "$UTIL_LOG" ]; then
    awk -F', ' '{u += $1; if ($1 > umax) umax = $1; if ($2 > mmax) mmax = $2; n++}
        END {printf "GPU utilisation: mean %.0f%%, max %d%% over %d samples; most memory used %d MiB\n", u / n, umax, n, mmax}' "$UTIL_LOG"
fi
echo "gpu_check took $(( $(date +%s) - started )) s"
