#!/bin/sh
# The checks that need a GPU, in one go (a lent GPU machine's time is short):
#
#   sh bench/gpu_checks.sh OUTDIR
#
# 1. `harness profile` of STF on the GPU;
# 2. the tests with a GPU path: the portable-bitstream matrix's cuda column, the mixed
#    plan's GPU worker and its out-of-memory fallback (a real CUDA OOM), a model of
#    one's own on the GPU beside JPEG on the CPU;
# 3. `harness verify --cross` on random weights of STF and the hyperprior: bytes
#    written on the CPU at 1, 2 and all threads and on the GPU, decoded at each;
# 4. bench/mixed_plan.py with the learned codecs on the GPU, and on the CPU, at 4 jobs.
# On an H200 machine (2026-12-04) importing torch took ~20 s a process: step 2 took
# 250 s and STF's verify 166 s; all of it needs more than 10 minutes.
# Each step's output is kept in OUTDIR/STEP.txt, its end printed; a failing step does not
# stop the others. Needs the harness installed (its entry points) with its dependencies.
set -u
OUT=${1:-gpu-checks}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
step() { name=$1; shift; echo "== $name: $*"; start=$(date +%s)
         "$@" >"$OUT/$name.txt" 2>&1; rc=$?
         echo "   rc=$rc in $(( $(date +%s) - start )) s"; tail -n 25 "$OUT/$name.txt"; }

step gpu nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step torch "$PY" -c "import torch, compressai; print(torch.__version__,
torch.version.cuda, torch.cuda.get_device_name(), compressai.__version__)"

step profile-stf-cuda "$PY" -m harness profile stf --device cuda --runs 2 --format json
step tests "$PY" -m pytest -q -p no:cacheprovider -rs \
    tests/test_portable.py::test_the_gpu_column_runs_the_codec_on_the_gpu \
    tests/test_scheduling.py -k "gpu or model_on_the_gpu" \
    tests/test_user_models.py::test_a_model_on_the_gpu_beside_jpeg_on_the_cpu

WEIGHTS=$(mktemp -d)
"$PY" - "$WEIGHTS" <<'EOF'
import sys
import torch
from harness.registry import new_codec
for arch in ("stf", "bmshj2018-hyperprior"):
    torch.manual_seed(1)
    net = new_codec(arch).random_network(1)
    torch.save(net.state_dict(), f"{sys.argv[1]}/{arch}.pth")
EOF
for arch in stf bmshj2018-hyperprior; do
    step "verify-$arch" "$PY" -m harness verify "$arch" --checkpoint "$WEIGHTS/$arch.pth" \
        --qualities 1 --images 1 --crop 256 --cross --store "$OUT/verify.sqlite"
done
step mixed-cuda "$PY" bench/mixed_plan.py --jobs 4 --device cuda --classical jpeg webp jpeg2000
step mixed-cpu "$PY" bench/mixed_plan.py --jobs 4 --device cpu --classical jpeg webp jpeg2000
