#!/usr/bin/env bash
# The one command a session with a lent GPU runs (benchmarks/README.md, "Accelerators"), from
# the repository root, after benchmarks/device_wheels.sh here and with `carry: [".whl"]`:
#   bash benchmarks/device_run.sh            (timeout_s 590; BUDGET=seconds to change the
#                                              benchmark's 380-second budget)
# Writes to $OUT (the device tool's folder; benchmarks/results/device elsewhere): the
# accelerator table and JSON record, the profile summary of the FFJORD 2-D step, the host
# round-trip test's output on the accelerator, and the logs.
set -o pipefail
OUT=${OUT:-benchmarks/results/device}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
# Fail fast (minutes of device time are scarce): jgen and its peers must import, on the GPU.
python3 -c "import jax, jgen, distrax, flowjax, benchmarks.accelerator; print(jax.__version__, jax.devices()); assert jax.default_backend() != 'cpu'" \
  2>&1 | tee -a "$OUT/gpu.txt" | tail -3
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "imports failed: see $OUT/gpu.txt"; exit 1; }
python3 benchmarks/accelerator.py --budget "${BUDGET:-380}" --profile "$OUT/profile" \
  --out "$OUT" 2>&1 | tee "$OUT/accelerator.log"
# The steady-state host round-trip test, where the device-to-host transfer guard fires (the
# CPU backend's host reads are zero-copy and escape it). The conftest defaults to the CPU.
JAX_PLATFORMS=cuda timeout 100 python3 -m pytest -q -p no:randomly -p no:cacheprovider \
  tests/train/test_host_round_trips.py 2>&1 | tail -20 > "$OUT/round_trips.txt"
ls -la "$OUT" "$OUT/profile"
