#!/usr/bin/env bash
# Preemption as a user meets it: a 2-rank `zerorl train` under
# scripts/launch_mpirun.sh gets SIGTERM mid-run; every rank finishes its
# step, checkpoints, and the command exits 75 with one line; `--resume auto`
# then ends on the same weights as an uninterrupted run.  Also: a second
# signal ends a run at once (no checkpoint of a later step).
# Usage: stop_signal_test.sh ZERORL_BINARY SOURCE_DIR
set -uo pipefail
z=$(realpath "$1")
src=$(realpath "$2")
source "$(dirname "${BASH_SOURCE[0]}")/test_lib.sh"
export OMP_NUM_THREADS=1
# launch_mpirun.sh runs <its folder>/../build/zerorl: give it this binary.
mkdir -p "$work/tree/scripts" "$work/tree/build"
cp "$src/scripts/launch_mpirun.sh" "$work/tree/scripts/"
ln -s "$z" "$work/tree/build/zerorl"
launch=("$work/tree/scripts/launch_mpirun.sh" 2 --oversubscribe --)

write_tiny_pretrain "$work/pt.yaml" 1
"$z" pretrain "$work/pt.yaml" >"$work/pt.log" 2>&1 || { cat "$work/pt.log"; exit 1; }
steps=12
write_tiny_train "$work/train.yaml" straight "$work/runs/pt/base.h5" \
  "train: {steps: $steps, prompts_per_step: 4, group_size: 4, sample_every: 0}" \
  "checkpoint: {every: 0}"

# The uninterrupted run.
"${launch[@]}" train "$work/train.yaml" >"$work/straight.log" 2>&1
check "uninterrupted run exits 0" test $? -eq 0
want=$("$z" ckpt hash "$work/runs/straight/checkpoints/step_$steps" 2>&1)

# The same run, SIGTERM'd to the launcher once its first step is logged.
"${launch[@]}" train "$work/train.yaml" run.name=stopped >"$work/stopped.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ -s "$work/runs/stopped/metrics.jsonl" ] && break
  sleep 0.1
done
kill -TERM "$pid"
wait "$pid"
rc=$?
check "a SIGTERM'd run exits 75 (got $rc)" test "$rc" -eq 75
check "it says so in one line naming --resume auto" \
  test "$(grep -c 'stopped by .* after step .*--resume auto' "$work/stopped.log")" -eq 1
done_steps=$(grep -c . "$work/runs/stopped/metrics.jsonl")
check "it stopped before the end (after $done_steps of $steps steps)" test "$done_steps" -lt "$steps"
check "it checkpointed the step it finished" \
  test -d "$work/runs/stopped/checkpoints/step_$done_steps"
"${launch[@]}" train "$work/train.yaml" run.name=stopped --resume auto >"$work/resumed.log" 2>&1
check "--resume auto finishes (exit $?)" test -d "$work/runs/stopped/checkpoints/step_$steps"
got=$("$z" ckpt hash "$work/runs/stopped/checkpoints/step_$steps" 2>&1)
check "resumed weights equal the uninterrupted run's ($got vs $want)" test "$got" = "$want"

# A second signal: the run ends at once, before the step it was in finishes
# (steps made long enough, seconds: 64 groups of 16 completions each).
"$z" train "$work/train.yaml" run.name=twice train.steps=1000 train.prompts_per_step=64 \
  train.group_size=16 >"$work/twice.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ -s "$work/runs/twice/metrics.jsonl" ] && break
  sleep 0.1
done
kill -INT "$pid"
sleep 0.5  # two signals sent at once may merge into one (standard signals do not queue)
kill -INT "$pid"
wait "$pid"
rc=$?
check "a second SIGINT exits at once with 130 (got $rc)" test "$rc" -eq 130
check "and says so" grep -q "second signal" "$work/twice.log"
check "without finishing the step" sh -c "! grep -q 'stopped by' '$work/twice.log'"

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  for f in straight stopped resumed twice; do echo "== $f.log"; tail -n 15 "$work/$f.log"; done
  exit 1
fi
echo "all stop-signal checks passed"
