#!/usr/bin/env bash
# Data as a user brings it: a recipe copied next to its data and policy
# runs from another working directory (relative paths resolve against the
# recipe's folder); a TinyZero-style countdown JSONL (target and nums as
# top-level fields) reaches the countdown reward as metadata; the cosine
# schedule's optimizer.total_steps defaults to the run's optimizer updates.
# Usage: data_test.sh ZERORL_BINARY SOURCE_DIR
set -uo pipefail
z=$(realpath "$1")
src=$(realpath "$2")
source "$(dirname "${BASH_SOURCE[0]}")/test_lib.sh"
export OMP_NUM_THREADS=1
mkdir -p "$work/proj" "$work/elsewhere"
for split in train test; do
  "$z" data generate countdown --split $split --n 8 --seed 1 --num-count 3 --max-number 9 \
       --min-target 5 --max-target 30 --out "$work/$split.raw.jsonl" || exit 1
  jq -c '{prompt, answer, target: .meta.target, nums: .meta.numbers}' "$work/$split.raw.jsonl" \
    >"$work/proj/$split.jsonl"
done
cp "$src/recipes/base-tiny.h5" "$work/proj/"
cat >"$work/proj/cd.yaml" <<YAML
run: {name: cd, dir: $work/runs}
policy: {init: base-tiny.h5}
template: {name: tiny}
data: {source: jsonl, path: train.jsonl, test_path: test.jsonl}
rollout:
  num_slots: 8
  sampling: {temperature: 1.0, max_new_tokens: 24, stop_strings: ["</answer>"]}
rewards:
  threads: 1
  countdown: {type: countdown}
optimizer: {lr: 1.0e-4, schedule: cosine, warmup_steps: 1}
train: {steps: 2, prompts_per_step: 2, group_size: 2, minibatches: 2, sample_every: 0}
eval: {every: 0, correct_reward: countdown, format_reward: ""}
YAML
(cd "$work/elsewhere" && "$z" train ../proj/cd.yaml) >"$work/train.log" 2>&1
rc=$?
check "a recipe in another folder runs (exit $rc)" test "$rc" -eq 0
check "countdown metadata reached the reward (error rate 0 at both steps)" \
  test "$(jq -r '.["reward/countdown/error_rate"]' "$work/runs/cd/metrics.jsonl" 2>/dev/null | tr '\n' ,)" = "0,0,"
check "optimizer.total_steps defaults to 2 steps x 2 minibatches" \
  grep -Eq 'total_steps: 4([,}]|$)' "$work/runs/cd/recipe.resolved.yaml"
if [ "$fails" -ne 0 ]; then cat "$work/train.log"; echo "$fails check(s) failed"; exit 1; fi
echo "all data checks passed"
