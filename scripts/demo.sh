#!/usr/bin/env bash
# Install what is missing, build, and run a CPU R1-Zero reproduction: pure
# RL (GRPO, accuracy + format rewards) from a tiny MoE base, on two CPU
# cores.  See README.md, docs/ARCHITECTURE.md and docs/REPRODUCTION.md.
#
#   ./scripts/demo.sh                         # tiny: multi-digit addition
#   ./scripts/demo.sh train.steps=10          # overrides go to the train recipe
#   ./scripts/demo.sh reflect                 # Reproduction II (issue 19): sums of
#   ./scripts/demo.sh reflect train.steps=20  # 2-4 three-digit numbers, a base that can reflect
#
# Demo NAME runs recipes/r1zero-NAME.yaml from recipes/base-NAME.h5 (the
# shipped base); when that file is missing, recipes/base-NAME.yaml pretrains
# it first.  scripts/demo_reflect.sh is `demo.sh reflect`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

# demo NAME [train overrides...]
demo() {
  local name=$1
  shift
  ./scripts/setup.sh
  ./scripts/build.sh
  # Tiny models run fastest with one OpenMP thread per process; the two cores
  # are used by two MPI ranks instead.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  local launch=(./build/zerorl)
  if command -v mpirun >/dev/null && [ "$(nproc)" -ge 2 ]; then
    launch=(mpirun --oversubscribe --allow-run-as-root -np 2 ./build/zerorl)
  fi
  local base=recipes/base-$name.h5
  if [ ! -f "$base" ]; then
    echo "[demo] no shipped base checkpoint at $base: pretraining it first (recipes/base-$name.yaml)"
    "${launch[@]}" pretrain "recipes/base-$name.yaml"
    cp "runs/base-$name/base.h5" "$base"
  fi
  echo "[demo] GRPO from the base: recipes/r1zero-$name.yaml"
  # --overwrite: running the demo again reproduces it from scratch (without
  # it, train refuses a run folder that holds checkpoints).
  "${launch[@]}" train "recipes/r1zero-$name.yaml" policy.init="$base" --overwrite "$@"
  echo "[demo] outputs: runs/r1zero-$name/ (metrics.jsonl, samples.jsonl, eval.jsonl, plots/, summary.json)"
}

name=tiny
case "${1:-}" in
  tiny | reflect) name=$1; shift ;;
esac
demo "$name" "$@"
