#!/usr/bin/env bash
# Faults a cluster throws (issue 21), as a user meets them through the
# zerorl binary.  One part per ctest:
#   resume   --resume auto over checkpoints that all fail verification stops,
#            names each and why, and changes nothing; one corrupt newest step
#            is kept aside (step_N.corrupt) while the run resumes before it
#   verify   `zerorl ckpt verify STEP_DIR` flags a missing rank file, an
#            edited attribute, ranks that disagree; generate/export refuse a
#            corrupt checkpoint
#   messages a checkpoint write on a full disk says "No space left on device";
#            invalid UTF-8 on stdin names its line and skips only it
# Usage: faults_test.sh ZERORL_BINARY SOURCE_DIR PART
set -uo pipefail
z=$(realpath "$1")
src=$(realpath "$2")
part=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails+1)); fi
}
export OMP_NUM_THREADS=1

# A three-step run of the tiny base, checkpointing every step.
cat >"$work/train.yaml" <<YAML
run: {name: r, dir: $work/runs}
policy: {init: $src/recipes/base-tiny.h5}
template: {name: tiny}
data:
  source: task
  task: {name: addition, min_digits: 1, max_digits: 2, seed: 0}
  train_size: 200
  test_size: 8
  seed: 1
rollout:
  num_slots: 16
  sampling: {temperature: 1.0, max_new_tokens: 12, stop_strings: ["</answer>"]}
rewards:
  accuracy: {type: math}
loss: {beta: 0.04}
optimizer: {lr: 1.0e-3, max_grad_norm: 1.0}
train: {steps: 3, prompts_per_step: 4, group_size: 4, sample_every: 0}
eval: {every: 0}
checkpoint: {every: 1, keep_last: 0}
reward_threads: 1
YAML
ckpts=$work/runs/r/checkpoints
flip() {  # flip FILE OFFSET: overwrite 4 bytes in place
  printf '\xa5\x5a\xa5\x5a' | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
tree_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
logs=()
show_logs() { for f in "${logs[@]}"; do echo "== $f"; tail -n 20 "$work/$f"; done; }

train() {  # train LOG ARGS...: runs zerorl train, returns its exit status
  local log=$1; shift
  logs+=("$log")
  "$z" train "$work/train.yaml" "$@" >"$work/$log" 2>&1
}

case "$part" in
resume)
  train first.log
  check "the first run exits 0" test $? -eq 0
  # Every checkpoint corrupt.
  for s in 1 2 3; do flip "$ckpts/step_$s/rank_0.h5" 3000; done
  before=$(tree_sum "$work/runs/r")
  train all_bad.log --resume auto
  rc=$?
  check "all-corrupt --resume auto exits non-zero (got $rc)" test "$rc" -ne 0
  check "and removes or changes nothing" test "$(tree_sum "$work/runs/r")" = "$before"
  for s in 1 2 3; do
    check "it names step_$s and why" grep -q "step_$s: rank_0.h5: " "$work/all_bad.log"
  done
  check "it says nothing was removed" grep -q "nothing was removed" "$work/all_bad.log"
  check "it does not send the user back to --resume auto" \
    sh -c "! grep -q 'continue it with --resume auto' '$work/all_bad.log'"

  # Only the newest corrupt: resume from step 2, keep step 3's file aside.
  rm -rf "$work/runs"
  train second.log
  flip "$ckpts/step_3/rank_0.h5" 3000
  bad=$(sha256sum <"$ckpts/step_3/rank_0.h5")
  train newest_bad.log --resume auto
  check "a corrupt newest step: --resume auto finishes (exit $?)" \
    test -f "$ckpts/step_3/rank_0.h5"
  check "it resumed from step 2" grep -q "resumed from .*step_2 at step 2" "$work/newest_bad.log"
  check "the corrupt step is kept byte for byte as step_3.corrupt" \
    test "$(sha256sum <"$ckpts/step_3.corrupt/rank_0.h5" 2>/dev/null)" = "$bad"
  check "with why.txt saying why" grep -q "checksum mismatch\|unreadable" "$ckpts/step_3.corrupt/why.txt"
  check "nothing blames an abandoned run" sh -c "! grep -aqi 'abandoned' '$work/newest_bad.log'"
  check "the new step 3 verifies" "$z" ckpt verify "$ckpts/step_3"
  ;;
*)
  echo "unknown part '$part'"; exit 2 ;;
esac

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  show_logs
  exit 1
fi
echo "all $part checks passed"
