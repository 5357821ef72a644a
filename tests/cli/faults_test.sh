#!/usr/bin/env bash
# Faults a cluster throws (issue 21), as a user meets them through the
# zerorl binary.  One part per ctest:
#   resume   --resume auto over checkpoints that all fail verification stops,
#            names each and why, and changes nothing; one corrupt newest step
#            is kept aside (step_N.corrupt) while the run resumes before it
#   verify   `zerorl ckpt verify STEP_DIR` flags a missing rank file, an
#            edited attribute, ranks that disagree; generate/export/eval
#            refuse a corrupt checkpoint (eval: a byte flipped in rank_1.h5
#            of the step it is given, or in a copy of a rank file)
#   disagree ranks launched (MPMD) with a different optimizer.lr, train.steps
#            or policy.init, or one path holding different weights, refuse
#            to start naming the rank and key; log.level may differ
#   reward   nothing a command reward's workers start survives the run; a
#            command that cannot start stops the run at start-up
#   messages a checkpoint write on a full disk says "No space left on device";
#            invalid UTF-8 on stdin names its line and skips only it
#   blowup   optimizer.lr=1e20: every update is skipped and counted
#            (optim/skipped_blowup), the run ends 0 and its checkpoint loads
#            and generates; lr=1e38 is refused at start-up naming the key
#   rollout_dies  rollout.mode disaggregated on 3 ranks: a rollout rank
#            SIGSTOPped mid-run ends the job within comm.timeout_s + 10 s
#            naming it; one SIGKILLed ends it within the same bound
#   hang     a 2-rank run with comm.timeout_s=5 whose rank 1 is SIGSTOPped
#            mid-run ends within 5 + 10 s, non-zero, naming the collective,
#            the step and rank 1
# Usage: faults_test.sh ZERORL_BINARY SOURCE_DIR PART
set -uo pipefail
z=$(realpath "$1")
src=$(realpath "$2")
part=$3
source "$(dirname "${BASH_SOURCE[0]}")/test_lib.sh"
export OMP_NUM_THREADS=1

# A three-step run of the tiny base, checkpointing every step.
write_tiny_train "$work/train.yaml" r "$src/recipes/base-tiny.h5" \
  "rewards: {accuracy: {type: math}}" "checkpoint: {every: 1, keep_last: 0}"
ckpts=$work/runs/r/checkpoints
flip() {  # flip FILE OFFSET: overwrite 4 bytes in place
  printf '\xa5\x5a\xa5\x5a' | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
tree_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
logs=()
show_logs() { for f in "${logs[@]}"; do echo "== $f"; tail -n 20 "$work/$f"; done; }
# first_step_pid JOB RANK: waits (60 s at most) until rank 0 has logged a step
# or JOB has ended, then prints the pid of the zerorl process of MPI rank RANK.
first_step_pid() {
  for _ in $(seq 600); do
    [ -s "$work/runs/r/metrics.jsonl" ] && break
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  for p in $(pgrep -f "$z train $work/train.yaml"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && echo "$p"
  done
}

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
    check "it names step_$s and why" grep -aq "step_$s: .*/step_$s/rank_0.h5: " "$work/all_bad.log"
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
verify)
  root_flag=(); [ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)
  logs+=(two_ranks.log)
  mpirun -np 2 --oversubscribe "${root_flag[@]}" --bind-to none \
    "$z" train "$work/train.yaml" train.steps=2 >"$work/two_ranks.log" 2>&1
  check "a 2-rank run exits 0" test $? -eq 0
  "$z" ckpt verify "$ckpts/step_2" >"$work/v_ok" 2>&1
  check "a complete 2-rank step verifies" test $? -eq 0
  check "and says it is complete" grep -q "complete step" "$work/v_ok"
  mv "$ckpts/step_2/rank_1.h5" "$work/rank_1.h5"
  "$z" ckpt verify "$ckpts/step_2" >"$work/v_missing" 2>&1
  rc=$?
  check "a step missing rank_1.h5 fails verify (exit $rc)" test "$rc" -eq 1
  check "naming the missing file" grep -q "UNUSABLE.*rank_1.h5 of the 2 ranks .* missing" "$work/v_missing"
  cp "$ckpts/step_1/rank_1.h5" "$ckpts/step_2/rank_1.h5"
  "$z" ckpt verify "$ckpts/step_2" >"$work/v_mixed" 2>&1
  check "another step's rank file fails verify (exit $?)" grep -q "UNUSABLE.*disagrees" "$work/v_mixed"
  mv "$work/rank_1.h5" "$ckpts/step_2/rank_1.h5"

  # zerorl eval --ckpt verifies what it is given, the whole step: a byte
  # flipped in rank 1's file (whose weights eval would never read) refuses.
  ev=(eval "$work/train.yaml" eval.correct_reward=accuracy eval.format_reward=accuracy --json)
  logs+=(eval_ok eval_flip eval_flip_r0 eval_copy eval_copy_bad)
  "$z" "${ev[@]}" --ckpt "$ckpts/step_2" >"$work/eval_ok" 2>&1
  check "eval of a good 2-rank step works (exit $?)" grep -q '"step":2' "$work/eval_ok"
  cp "$ckpts/step_2/rank_1.h5" "$work/rank_1.good"
  flip "$ckpts/step_2/rank_1.h5" $(( $(stat -c %s "$ckpts/step_2/rank_1.h5") / 2 ))
  "$z" "${ev[@]}" --ckpt "$ckpts/step_2" >"$work/eval_flip" 2>&1
  rc=$?
  check "eval refuses a step with a byte flipped in rank_1.h5 (exit $rc)" test "$rc" -eq 1
  check "naming the file and why" \
    grep -q "fails verification (.*rank_1.h5: checksum mismatch.*refusing to evaluate it" "$work/eval_flip"
  "$z" "${ev[@]}" --ckpt "$ckpts/step_2/rank_0.h5" >"$work/eval_flip_r0" 2>&1
  rc=$?
  check "and given rank_0.h5 of that step, refuses too (exit $rc)" test "$rc" -eq 1
  mv "$work/rank_1.good" "$ckpts/step_2/rank_1.h5"
  # A copy of a rank file, renamed: verified alone, evaluated as its step.
  cp "$ckpts/step_2/rank_0.h5" "$work/best.h5"
  "$z" "${ev[@]}" --ckpt "$work/best.h5" >"$work/eval_copy" 2>&1
  check "a good renamed copy evaluates as its step" \
    test "$(grep '^{' "$work/eval_copy")" = "$(grep '^{' "$work/eval_ok")"
  flip "$work/best.h5" $(( $(stat -c %s "$work/best.h5") / 2 ))
  "$z" "${ev[@]}" --ckpt "$work/best.h5" >"$work/eval_copy_bad" 2>&1
  rc=$?
  check "a corrupt renamed copy is refused (exit $rc)" test "$rc" -eq 1
  check "as corrupt" grep -q "best.h5: the checkpoint fails verification (checksum mismatch" "$work/eval_copy_bad"

  # Edit the model's config attribute (4 layers -> 2) in place, leaving the
  # manifest's escaped copy alone: the model that loads would change.
  f="$ckpts/step_2/rank_0.h5"
  "$z" generate --model "$f" --prompt "What is 1 + 2?" --max-new-tokens 4 --greedy --json \
    >"$work/gen_before" 2>&1
  check "generate from a good checkpoint works" grep -q '"completion"' "$work/gen_before"
  perl -0777 -pi -e 's/"num_hidden_layers": ?4/"num_hidden_layers": 2/ or die "no match\n"' "$f"
  check "the attribute was found and edited" test $? -eq 0
  "$z" ckpt verify "$f" >"$work/v_attr" 2>&1
  rc=$?
  check "an edited config_json attribute fails verify (exit $rc)" test "$rc" -eq 1
  check "as a checksum mismatch" grep -q "CORRUPT.*checksum mismatch" "$work/v_attr"
  "$z" generate --model "$f" --prompt "What is 1 + 2?" --max-new-tokens 4 --greedy --json \
    >"$work/gen_bad" 2>&1
  rc=$?
  check "generate refuses the corrupt checkpoint (exit $rc)" test "$rc" -eq 1
  check "saying why" grep -q "fails verification.*checksum mismatch" "$work/gen_bad"
  "$z" export --ckpt "$f" --hf "$work/hf" >"$work/export_bad" 2>&1
  rc=$?
  check "export refuses it too (exit $rc)" test "$rc" -eq 1
  check "and writes nothing" test ! -e "$work/hf/model.safetensors"
  ;;
messages)
  # A write on a full disk (/dev/full fails every write with ENOSPC) says
  # so: pretrain's output file, whose temp name is made to point there.
  # (trainer Checkpoint.AFullDiskSaysNoSpaceLeftOnDevice does the same to a
  # training checkpoint.)
  cat >"$work/pt.yaml" <<YAML
run: {name: pt, dir: $work/runs}
model: {hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, n_routed_experts: 4,
        moe_intermediate_size: 32, intermediate_size: 64, kv_lora_rank: 16, qk_nope_head_dim: 8,
        qk_rope_head_dim: 8, v_head_dim: 8, max_position_embeddings: 128, seed: 1}
corpus: {task: {name: addition, max_digits: 2}}
pretrain: {steps: 1, batch_size: 2, seq_len: 32, output: base.h5, optimizer: {lr: 1.0e-3}}
YAML
  mkdir -p "$work/runs/pt"
  ln -s /dev/full "$work/runs/pt/base.h5.tmp"
  logs+=(full.log)
  "$z" pretrain "$work/pt.yaml" >"$work/full.log" 2>&1
  rc=$?
  check "a write on a full disk fails the command (exit $rc)" test "$rc" -eq 1
  check "saying No space left on device" grep -q "base.h5.tmp.*No space left on device" "$work/full.log"
  check "and leaves no output file" test ! -e "$work/runs/pt/base.h5"

  # Invalid UTF-8 on stdin: named by line, only that line skipped.
  printf 'What is 1 + 2?\n\xff\xfe oops\nWhat is 3 + 4?\n' >"$work/stdin"
  "$z" tokenize --tokenizer char <"$work/stdin" >"$work/tok_out" 2>"$work/tok_err"
  rc=$?
  check "tokenize exits 1 after a bad line (got $rc)" test "$rc" -eq 1
  check "tokenize encodes the two good lines" test "$(grep -c . "$work/tok_out")" -eq 2
  check "tokenize names line 2" grep -q "stdin line 2: not valid UTF-8 (byte 0)" "$work/tok_err"
  "$z" generate --model "$src/recipes/base-tiny.h5" --max-new-tokens 3 --greedy --json \
    <"$work/stdin" >"$work/gen_out" 2>"$work/gen_err"
  rc=$?
  check "generate exits 1 after a bad line (got $rc)" test "$rc" -eq 1
  check "generate answers the two good lines" test "$(grep -c '"completion"' "$work/gen_out")" -eq 2
  check "generate names line 2" grep -q "stdin line 2: not valid UTF-8" "$work/gen_err"
  ;;
disagree)
  root_flag=(); [ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)
  mpmd() {  # mpmd LOG RANK0-ARGS... -- RANK1-ARGS...: one process each
    local log=$1; shift
    local a=() b=()
    while [ "$1" != "--" ]; do a+=("$1"); shift; done
    shift
    b=("$@")
    logs+=("$log")
    timeout 60 mpirun "${root_flag[@]}" --oversubscribe --bind-to none \
      -np 1 "$z" train "${a[@]}" run.name="${log%.log}" : \
      -np 1 "$z" train "${b[@]}" run.name="${log%.log}" >"$work/$log" 2>&1
  }
  mpmd lr.log "$work/train.yaml" -- "$work/train.yaml" optimizer.lr=2.0e-3
  rc=$?
  check "ranks given different optimizer.lr refuse (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
  check "naming rank 1 and optimizer.lr" grep -q "rank 1: optimizer.lr" "$work/lr.log"
  check "before any step" test ! -s "$work/runs/lr/metrics.jsonl"
  mpmd steps.log "$work/train.yaml" -- "$work/train.yaml" train.steps=5
  rc=$?
  check "different train.steps refuse rather than hang (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
  check "naming train.steps" grep -q "rank 1: train.steps" "$work/steps.log"
  cp "$src/recipes/base-tiny.h5" "$work/other.h5"
  mpmd init.log "$work/train.yaml" -- "$work/train.yaml" policy.init="$work/other.h5"
  check "a different policy.init refuses" grep -q "rank 1: policy.init" "$work/init.log"
  mpmd level.log "$work/train.yaml" -- "$work/train.yaml" log.level=debug
  check "a per-rank key (log.level) may differ (exit $?)" grep -q "steps 3" "$work/level.log"

  # The same path holding different weights on each rank ("node"): each
  # rank runs in its own folder with a relative policy.init.
  mkdir -p "$work/a" "$work/b"
  cat >"$work/pt.yaml" <<YAML
run: {name: pt, dir: $work/runs}
model: {hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, n_routed_experts: 4,
        moe_intermediate_size: 32, intermediate_size: 64, kv_lora_rank: 16, qk_nope_head_dim: 8,
        qk_rope_head_dim: 8, v_head_dim: 8, max_position_embeddings: 128, seed: 1}
corpus: {task: {name: addition, max_digits: 2}}
pretrain: {steps: 1, batch_size: 2, seq_len: 32, output: base.h5, optimizer: {lr: 1.0e-3}}
YAML
  "$z" pretrain "$work/pt.yaml" >/dev/null 2>&1 && cp "$work/runs/pt/base.h5" "$work/a/base.h5"
  "$z" pretrain "$work/pt.yaml" model.seed=2 run.name=pt2 >/dev/null 2>&1 &&
    cp "$work/runs/pt2/base.h5" "$work/b/base.h5"
  logs+=(weights.log)
  timeout 60 mpirun "${root_flag[@]}" --oversubscribe --bind-to none \
    -np 1 -wdir "$work/a" "$z" train "$work/train.yaml" policy.init=base.h5 run.name=w : \
    -np 1 -wdir "$work/b" "$z" train "$work/train.yaml" policy.init=base.h5 run.name=w \
    >"$work/weights.log" 2>&1
  rc=$?
  check "one path, different weights per rank: refused (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
  check "naming the rank and the file" \
    grep -q "different weights from policy.init base.h5: rank(s) 1 differ" "$work/weights.log"
  ;;
reward)
  # A command reward whose workers each start a process of their own and
  # print a stray line now and then: nothing survives the run.
  cat >"$work/judge.py" <<PY
import json, subprocess, sys
child = subprocess.Popen(["sleep", "300"])
with open("$work/pids", "a") as f: f.write("%d\\n" % child.pid)
for n, line in enumerate(sys.stdin):
    req = json.loads(line)
    if n % 3 == 2: print("debug: a stray line", flush=True)
    print(json.dumps({"id": req["id"], "reward": 0.5}), flush=True)
PY
  train judge.log "rewards.judge={type: command, command: \"python3 -u $work/judge.py\", processes: 2}"
  check "a run with a process-spawning command reward exits 0 (got $?)" test $? -eq 0
  check "its workers started processes" test "$(grep -c . "$work/pids" 2>/dev/null)" -ge 2
  gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
  left=0
  for p in $(cat "$work/pids" 2>/dev/null); do gone "$p" || { left=$((left+1)); kill -9 "$p"; }; done
  check "none of them survives the run ($left left)" test "$left" -eq 0
  train nocmd.log run.name=nocmd "rewards.judge={type: command, command: \"no-such-judge --fast\"}"
  rc=$?
  check "a command that cannot start fails at start-up (exit $rc)" test "$rc" -eq 1
  check "naming the key" grep -q "rewards.judge.command cannot start: 'no-such-judge' is not found" "$work/nocmd.log"
  check "before any step" test ! -s "$work/runs/nocmd/metrics.jsonl"
  ;;
blowup)
  train blowup.log optimizer.lr=1e20 train.steps=2
  check "an lr of 1e20 runs to the end (exit $?)" test $? -eq 0
  check "every update skipped as a blow-up" test "$(grep -c '"optim/skipped_blowup":1.0' "$work/runs/r/metrics.jsonl")" -eq 2
  check "and counted in optim/skipped_total" grep -q '"optim/skipped_total":2.0' "$work/runs/r/metrics.jsonl"
  check "the log says why" grep -q "update skipped: it would blow the weights up" "$work/blowup.log"
  check "the checkpoint verifies" "$z" ckpt verify "$ckpts/step_2"
  "$z" generate --model "$ckpts/step_2/rank_0.h5" --prompt "What is 1 + 2?" --max-new-tokens 4 \
    --greedy --json >"$work/gen_blowup" 2>&1
  check "its weights are finite: generate works (exit $?)" grep -q '"completion"' "$work/gen_blowup"
  train lr38.log optimizer.lr=1e38 run.name=lr38
  rc=$?
  check "lr=1e38 is refused (exit $rc)" test "$rc" -eq 1
  check "at start-up, naming the key" grep -q "command line 'optimizer.lr=1e38': optimizer.lr = 1e+38 is beyond the fp32 range" "$work/lr38.log"
  check "before any step" test ! -s "$work/runs/lr38/metrics.jsonl"
  ;;
hang)
  root_flag=(); [ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)
  logs+=(hang.log)
  timeout 90 mpirun "${root_flag[@]}" --oversubscribe --bind-to none -np 2 \
    "$z" train "$work/train.yaml" train.steps=1000 checkpoint.every=0 comm.timeout_s=5 \
    >"$work/hang.log" 2>&1 &
  job=$!
  rank1=$(first_step_pid "$job" 1)
  check "the job was running steps when rank 1 was stopped" test -n "$rank1" -a -s "$work/runs/r/metrics.jsonl"
  t0=$(date +%s)
  [ -n "$rank1" ] && kill -STOP "$rank1"
  wait "$job"
  rc=$?
  dt=$(( $(date +%s) - t0 ))
  for p in $(pgrep -f "$z train $work/train.yaml"); do kill -9 "$p"; done  # the planted defect's leftovers
  check "the job ends non-zero by itself (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
  check "within comm.timeout_s + 10 s (took $dt s)" test "$dt" -le 15
  check "naming the collective, the step and rank 1" grep -Eq \
    "collective [a-z_ ]+ #[0-9]+ \(step [0-9]+\) timed out after 5 s on rank 0: rank\(s\) 1 did not arrive" \
    "$work/hang.log"
  ;;
rollout_dies)
  # rollout.mode disaggregated on 3 ranks (learner 0, rollout ranks 1 and 2,
  # one step off-policy): rollout rank 2 stopped, then killed, mid-run.
  root_flag=(); [ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)
  for how in STOP KILL; do
    log=rollout_$how.log
    logs+=("$log")
    rm -rf "$work/runs"
    timeout 90 mpirun "${root_flag[@]}" --oversubscribe --bind-to none -np 3 \
      "$z" train "$work/train.yaml" train.steps=1000 checkpoint.every=0 comm.timeout_s=5 \
      rollout.mode=disaggregated parallel.rollout_ranks=2 rollout.max_staleness=1 \
      >"$work/$log" 2>&1 &
    job=$!
    rank2=$(first_step_pid "$job" 2)
    check "SIG$how: the job was running steps when rollout rank 2 was hit" \
      test -n "$rank2" -a -s "$work/runs/r/metrics.jsonl"
    t0=$(date +%s)
    [ -n "$rank2" ] && kill -"$how" "$rank2"
    wait "$job"
    rc=$?
    dt=$(( $(date +%s) - t0 ))
    for p in $(pgrep -f "$z train $work/train.yaml"); do kill -9 "$p"; done  # a planted defect's leftovers
    check "SIG$how: the job ends non-zero by itself (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
    check "SIG$how: within comm.timeout_s + 10 s (took $dt s)" test "$dt" -le 15
    if [ "$how" = STOP ]; then
      check "SIGSTOP: the message names rank 2" grep -Eq \
        "(receive from|send to) rank 2 .*timed out after 5 s|timed out after 5 s on rank [0-9]: rank\(s\) ([0-9], )*2( |,).*did not arrive" \
        "$work/$log"
    else
      check "SIGKILL: the launcher names rank 2" grep -Eq "rank 2 .*(exited on signal 9|Killed)|signal 9" \
        "$work/$log"
    fi
  done
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
