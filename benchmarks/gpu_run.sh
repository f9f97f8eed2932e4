#!/usr/bin/env bash
# Every GPU check in one command (the device machine has no astropy/arviz/emcee; the
# benchmarks' GPU paths import none of them). Usage on the GPU machine, repo root:
#   OUT=/some/dir bash benchmarks/gpu_run.sh [quick|hierarchy|hierarchy-seq]
# Writes benchmarks/results/*_gpu.json and copies them plus logs to $OUT.
set -u
export PYTHONPATH=.:${PYTHONPATH:-} PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
OUT=${OUT:-/tmp/jaxgrad_gpu_out}
mkdir -p "$OUT"
Q=${1:-}
LOG="$OUT/gpu_log.txt"
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  python -c "import jax, numpyro; print('jax', jax.__version__, 'numpyro', numpyro.__version__, jax.devices())"
} > "$LOG" 2>&1
run() {  # name, time limit (s), command...
  local name=$1 lim=$2; shift 2
  echo "=== $name (limit ${lim}s) $(date -u +%T)" >> "$LOG"
  timeout "$lim" "$@" >> "$LOG" 2>&1; echo "=== $name rc=$? $(date -u +%T)" >> "$LOG"
}
if [ "$Q" = hierarchy ]; then
  # the 10^4-galaxy target alone (one call of ~10 min): 4 vmapped chains x (500 + 500)
  run inference 570 python benchmarks/inference.py --gpu --sizes 10000 --chains 4 --draws 500 500 --skip-grad-cost --time-limit 560
elif [ "$Q" = hierarchy-seq ]; then
  # the 10^4-galaxy hierarchy: 2 chains one after another x (300 + up to 800); stage timings
  # and NUTS progress in the log; sampling stops in time to keep its draws. With the
  # float32-safe potential (b200cc4) 2 x (300 + 400) took 130 s of NUTS on an H200
  # (127 steps/draw); tau_z's ESS was 276 from 800 draws, hence 800 per chain
  run inference ${LIMIT:-570} python benchmarks/inference.py --gpu --sizes 10000 --chains 2 --draws 300 800 --sequential-chains --skip-grad-cost --time-limit $(( ${LIMIT:-570} - 20 ))
elif [ "$Q" = quick ]; then
  run forward 120 python benchmarks/forward.py --gpu --no-dysmalpy --batches 1 64 --repeats 2
  run mocks 200 python benchmarks/mocks.py --gpu --batches 64 --n-suite 200 --million 2000 --large-chunk 1000 --time-limit 30
  run inference 200 python benchmarks/inference.py --gpu --quick
else
  run forward 80 python benchmarks/forward.py --gpu --no-dysmalpy
  run mocks 180 python benchmarks/mocks.py --gpu --million 1000000 --large-chunk 8192 --time-limit 80
  run inference 130 python benchmarks/inference.py --gpu --time-limit 110
  run reference_tests 50 python -m pytest -q -p no:cacheprovider tests/test_reference_forward.py -k "float32 or cube"
fi
cp benchmarks/results/*_gpu.json "$OUT"/ 2>/dev/null
ls -la "$OUT" >> "$LOG"
