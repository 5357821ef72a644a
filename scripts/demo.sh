#!/usr/bin/env bash
# Install what is missing, build, and run the tiny R1-Zero reproduction:
# pure RL (GRPO, accuracy + format rewards) from a tiny MoE base on
# multi-digit addition, on the CPU.  See README.md and docs/ARCHITECTURE.md.
#
#   ./scripts/demo.sh                 # the whole thing
#   ./scripts/demo.sh train.steps=10  # overrides go to the train recipe
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
./scripts/setup.sh
./scripts/build.sh
# Tiny models run fastest with one OpenMP thread per process; the two cores
# are used by two MPI ranks instead.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
launch=(./build/zerorl)
if command -v mpirun >/dev/null && [ "$(nproc)" -ge 2 ]; then
  launch=(mpirun --oversubscribe --allow-run-as-root -np 2 ./build/zerorl)
fi
base=recipes/base-tiny.h5
if [ ! -f "$base" ]; then
  echo "[demo] no shipped base checkpoint at $base: pretraining it first (recipes/base-tiny.yaml)"
  "${launch[@]}" pretrain recipes/base-tiny.yaml
  cp runs/base-tiny/base.h5 "$base"
fi
echo "[demo] GRPO from the base: recipes/r1zero-tiny.yaml"
# --overwrite: running the demo again reproduces it from scratch (without it,
# train refuses a run folder that holds checkpoints).
"${launch[@]}" train recipes/r1zero-tiny.yaml policy.init="$base" --overwrite "$@"
echo "[demo] outputs: runs/r1zero-tiny/ (metrics.jsonl, samples.jsonl, eval.jsonl, plots/, summary.json)"
