#!/usr/bin/env bash
# Build and run the second CPU reproduction (issue 19): pure RL on sums of
# 2-5 numbers from a tiny base that can reflect but rarely does.  Like
# scripts/demo.sh: the shipped base (recipes/base-reflect.h5) is used when
# present, otherwise it is pretrained first (recipes/base-reflect.yaml).
# Results and the runs tried: docs/REPRODUCTION.md, "Reproduction II".
#
#   ./scripts/demo_reflect.sh                 # the whole thing
#   ./scripts/demo_reflect.sh train.steps=20  # overrides go to the train recipe
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
./scripts/setup.sh
./scripts/build.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
launch=(./build/zerorl)
if command -v mpirun >/dev/null && [ "$(nproc)" -ge 2 ]; then
  launch=(mpirun --oversubscribe --allow-run-as-root -np 2 ./build/zerorl)
fi
base=recipes/base-reflect.h5
if [ ! -f "$base" ]; then
  echo "[demo] no shipped base checkpoint at $base: pretraining it first (recipes/base-reflect.yaml)"
  "${launch[@]}" pretrain recipes/base-reflect.yaml
  cp runs/base-reflect/base.h5 "$base"
fi
echo "[demo] GRPO from the base: recipes/r1zero-reflect.yaml"
"${launch[@]}" train recipes/r1zero-reflect.yaml policy.init="$base" --overwrite "$@"
echo "[demo] outputs: runs/r1zero-reflect/ (metrics.jsonl, samples.jsonl, eval.jsonl, plots/, summary.json)"
