#!/usr/bin/env bash
# Train a spec's missing runs on a lent GPU machine in ONE device call, and send back their
# records (results/runs/<key16>/, small files only) as $OUT/records.tar.
#
# The device machine gets a copy of the working tree only: no ../shared, no .git, no optuna.
# Prepare here once per session (all under the ignored folder .gpu/):
#   mkdir -p .gpu && rm -rf .gpu/git && cp -r .git .gpu/git        # runs stamp this commit (redo after each commit)
#   cp -r ../shared/data .gpu/data                                 # the datasets (a few MB)
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .gpu/whl optuna==5.1.0 alembic==1.20.1 sqlalchemy==2.1.9 colorlog==6.12.0 mako==1.4.3
# Then call the device tool's run with carry [".gpu"] and, e.g.,
#   command: bash scripts/device_run.sh 420 experiments/dcd-table2-neumf.yaml
#   timeout_s: 540
# and back here: tar -xf <files_at>/records.tar && recdistill experiment report ... .
# LIMIT (seconds) bounds the training; runs still unfinished then are lost with the machine
# (only finished runs are recorded), so size it to the runs that can finish.
# DEVICE=cpu OUT=/tmp/x bash scripts/device_run.sh 30 SPEC checks the plumbing on this machine.
set -u
limit=${1:?usage: device_run.sh LIMIT_SECONDS SPEC...}
shift
[ $# -gt 0 ] || { echo "usage: device_run.sh LIMIT_SECONDS SPEC..."; exit 2; }
: "${OUT:?OUT (the folder that comes back) is not set}"
device=${DEVICE:-cuda}
root=$(pwd)
site=/tmp/recdistill-site
if [ -d .gpu/whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .gpu/whl/*.whl || exit 1
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$site:$root/src" OMP_NUM_THREADS=1
[ -d .gpu/data ] && export RECDISTILL_DATA="$root/.gpu/data"
[ -d .gpu/git ] && export GIT_DIR="$root/.gpu/git" GIT_WORK_TREE="$root"
python3 - "$device" <<'EOF' || exit 1
import sys, torch
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit("no CUDA device")
print("torch", torch.__version__, "device", sys.argv[1], torch.cuda.get_device_name() if sys.argv[1] == "cuda" else "")
EOF
git rev-parse --short=12 HEAD 2>/dev/null || echo "no git: runs stamp commit 'unknown'"
marker=$(mktemp)
for spec in "$@"; do
  # SIGINT stops gracefully: finished runs stay finished; the others are lost with the machine
  timeout -s INT -k 30 "$limit" python3 -m recdistill experiment run "$spec" --device "$device" --jobs "${JOBS:-6}" --threads 1 2>&1 | tee -a "$OUT/run.log"
  python3 -m recdistill experiment record "$spec" 2>&1 | tee -a "$OUT/run.log"
done
new=$(find results/runs -mindepth 1 -maxdepth 1 -type d -newer "$marker" | sort)
if [ -n "$new" ]; then
  # shellcheck disable=SC2086
  tar -cf "$OUT/records.tar" $new && echo "records.tar: $(echo "$new" | wc -l) records"
else
  echo "no new records"
fi
