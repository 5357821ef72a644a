#!/usr/bin/env bash
# `zerorl eval` as a user drives it: on a checkpoint of a short GRPO run it
# prints the same figures (byte for byte, in --json) as the training run's
# own evaluation of that step; without --ckpt those of step 0 (policy.init);
# --ckpt auto takes the newest checkpoint; a typo'd key still fails.
# Usage: eval_test.sh ZERORL_BINARY SOURCE_DIR
set -uo pipefail
z=$(realpath "$1")
src=$(realpath "$2")
source "$(dirname "${BASH_SOURCE[0]}")/test_lib.sh"
export OMP_NUM_THREADS=1

"$z" --version >"$work/version" 2>&1
check "--version names zerorl and its version" grep -Eq '^zerorl [0-9]+\.[0-9]+\.[0-9]+ ' "$work/version"

write_tiny_train "$work/train.yaml" ev "$src/recipes/base-tiny.h5" \
  "data: {source: task, task: {name: addition, min_digits: 1, max_digits: 2, seed: 0},
         train_size: 200, test_size: 6, seed: 1}" \
  "rollout: {num_slots: 16,
            sampling: {temperature: 1.0, max_new_tokens: 48, stop_strings: [\"</answer>\"]}}" \
  "loss: {beta: 0.0}" "optimizer: {lr: 3.0e-3, max_grad_norm: 1.0}" \
  "train: {steps: 2, prompts_per_step: 2, group_size: 4, sample_every: 1, samples_per_log: 8}" \
  "eval: {every: 2, num_problems: 6, k: 2, n: 3}" "checkpoint: {every: 2}"
"$z" train "$work/train.yaml" >"$work/train.log" 2>&1 || { cat "$work/train.log"; exit 1; }
step0=$(grep '"step":0,' "$work/runs/ev/eval.jsonl")
step2=$(grep '"step":2,' "$work/runs/ev/eval.jsonl")
check "training evaluated at steps 0 and 2" test -n "$step0" -a -n "$step2"
# Otherwise the comparisons below could not tell a checkpoint from the base.
check "two steps moved the figures" test "$step0" != "$step2"

"$z" eval "$work/train.yaml" --ckpt "$work/runs/ev/checkpoints/step_2" --json \
  >"$work/e2" 2>"$work/e2.log"
check "eval of step_2 = training's eval at step 2" test "$(cat "$work/e2")" = "$step2"
# eval_samples.jsonl: a completion per problem and evaluation, the same
# lines from `zerorl eval --out` as from training.
check "training wrote 6 eval samples at steps 0 and 2" \
  test "$(jq -c 'select(.step == 2)' "$work/runs/ev/eval_samples.jsonl" | wc -l)" -eq 6 -a \
       "$(jq -c 'select(.step == 0)' "$work/runs/ev/eval_samples.jsonl" | wc -l)" -eq 6
"$z" eval "$work/train.yaml" --ckpt "$work/runs/ev/checkpoints/step_2" --out "$work/out" \
  >/dev/null 2>>"$work/e2.log"
check "eval --out writes the eval.jsonl line" test "$(cat "$work/out/eval.jsonl")" = "$step2"
check "eval --out writes training's eval samples of that step" \
  cmp -s <(jq -c 'select(.step == 2)' "$work/runs/ev/eval_samples.jsonl") \
         <(jq -c . "$work/out/eval_samples.jsonl")
check "eval samples are problems 0..5 with answers, reasons and gold" \
  test "$(jq -r '[.problem, .decoding, (.reasons.accuracy != null), (.gold != null),
                  (.num_samples)] | @tsv' "$work/out/eval_samples.jsonl" | tr '\t' ' ' | tr '\n' ,)" = \
       "0 greedy true true 3,1 greedy true true 3,2 greedy true true 3,3 greedy true true 3,4 greedy true true 3,5 greedy true true 3,"
# samples.jsonl: a wrong answer still shows what was extracted and why.
check "samples.jsonl shows the answer and reason of wrong answers" \
  test "$(jq -c 'select(.components.accuracy == 0 and (.answers.accuracy // "") != ""
                 and (.reasons.accuracy // "") != "")' "$work/runs/ev/samples.jsonl" | wc -l)" -ge 1
"$z" eval "$work/train.yaml" --ckpt "$work/runs/ev/checkpoints/step_2/rank_0.h5" --json \
  >"$work/e2r" 2>>"$work/e2.log"
check "eval of a rank file = of its step folder" test "$(cat "$work/e2r")" = "$step2"
"$z" eval "$work/train.yaml" --ckpt auto --json >"$work/ea" 2>>"$work/e2.log"
check "eval --ckpt auto takes step 2" test "$(cat "$work/ea")" = "$step2"
"$z" eval "$work/train.yaml" --json >"$work/e0" 2>>"$work/e2.log"
check "eval without --ckpt = training's eval at step 0" test "$(cat "$work/e0")" = "$step0"
"$z" eval "$work/train.yaml" --ckpt "$src/recipes/base-tiny.h5" --json >"$work/ep" 2>>"$work/e2.log"
check "eval of a policy file = its step-0 figures" test "$(cat "$work/ep")" = "$step0"
"$z" eval "$work/train.yaml" --ckpt "$work/runs/ev/checkpoints/step_2" >"$work/table" 2>>"$work/e2.log"
check "the table names pass_at_1 and maj_at_2" sh -c "grep -q '^pass_at_1 ' '$work/table' && grep -q '^maj_at_2 ' '$work/table'"

"$z" eval "$work/train.yaml" eval.kk=3 >"$work/typo" 2>&1; rc=$?
check "a typo'd key fails (exit 1) naming it" sh -c "test $rc -eq 1 && grep -q 'eval.kk' '$work/typo'"
"$z" eval "$work/train.yaml" --ckpt "$work/nowhere" >"$work/miss" 2>&1; rc=$?
check "a missing --ckpt fails (exit 1) naming it" sh -c "test $rc -eq 1 && grep -q 'nowhere' '$work/miss'"

if [ "$fails" -ne 0 ]; then cat "$work/e2.log"; echo "$fails check(s) failed"; exit 1; fi
echo "all eval checks passed"
