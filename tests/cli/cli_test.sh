#!/usr/bin/env bash
# The zerorl binary as a user drives it: every subcommand's --help, exit
# codes for bad flags, and small round trips through the commands that turn
# files into files.  Usage: cli_test.sh ZERORL_BINARY
set -uo pipefail
z=$1
source "$(dirname "${BASH_SOURCE[0]}")/test_lib.sh"

# --help for every subcommand, and exit 2 on an unknown flag.
for cmd in pretrain train eval generate grade tokenize data ckpt import export plot; do
  "$z" "$cmd" --help >"$work/help" 2>&1
  check "$cmd --help" grep -q "usage" "$work/help"
  "$z" "$cmd" --no-such-flag >/dev/null 2>&1
  rc=$?
  check "$cmd unknown flag exits 2 (got $rc)" test "$rc" -eq 2
done
"$z" frobnicate >/dev/null 2>&1; rc=$?
check "unknown command exits 2" test "$rc" -eq 2

# tokenize: encode then decode gives the lines back.
printf 'What is 12 + 7?\n<think> 2+7=9 </think> <answer>19</answer>\n' >"$work/text"
"$z" tokenize --tokenizer char <"$work/text" >"$work/ids"
check "tokenize encodes one list per line" test "$(wc -l <"$work/ids")" -eq 2
"$z" tokenize --tokenizer char --decode <"$work/ids" >"$work/back"
check "tokenize --decode round-trips" cmp -s "$work/text" "$work/back"

# data generate: distinct, checkable problems as JSONL.
"$z" data generate addition --split test --n 20 --seed 3 --out "$work/test.jsonl"
check "data generate writes 20 lines" test "$(wc -l <"$work/test.jsonl")" -eq 20
check "data generate lines carry prompt and answer" grep -q '"answer"' "$work/test.jsonl"

# grade: a correct and a wrong completion.
printf '%s\n' '{"gold": "19", "completion": "<think>x</think> <answer>19</answer>"}' \
              '{"gold": "19", "completion": "<answer>18</answer>"}' | "$z" grade >"$work/verdicts"
check "grade says correct" sh -c "head -1 '$work/verdicts' | grep -q '\"correct\": *true'"
check "grade says wrong" sh -c "tail -1 '$work/verdicts' | grep -q '\"correct\": *false'"

# pretrain two steps of a tiny model, then generate from the policy file,
# export it to a Hugging Face folder, import it back: same bytes.
write_tiny_pretrain "$work/pt.yaml" 2
OMP_NUM_THREADS=1 "$z" pretrain "$work/pt.yaml" >"$work/pt.log" 2>&1
check "pretrain writes a policy file" test -f "$work/runs/pt/base.h5"
check "pretrain logs metrics" test "$(wc -l <"$work/runs/pt/metrics.jsonl")" -ge 1
"$z" pretrain "$work/pt.yaml" pretrain.stepz=3 >"$work/typo.log" 2>&1; rc=$?
check "a typo'd override fails (exit 1) naming the key" sh -c "test $rc -eq 1 && grep -q 'pretrain.stepz' '$work/typo.log'"
OMP_NUM_THREADS=1 "$z" generate --model "$work/runs/pt/base.h5" --prompt "What is 1 + 2?" \
  --max-new-tokens 5 --greedy --json >"$work/gen.json" 2>"$work/gen.err"
check "generate from a policy file prints JSON" grep -q '"completion"' "$work/gen.json"
"$z" export --ckpt "$work/runs/pt/base.h5" --hf "$work/hf" >/dev/null 2>&1
check "export writes config.json and safetensors" test -f "$work/hf/config.json" -a -f "$work/hf/model.safetensors"
"$z" import --hf "$work/hf" --out "$work/back.h5" >/dev/null 2>&1
"$z" export --ckpt "$work/back.h5" --hf "$work/hf2" >/dev/null 2>&1
check "import/export round trip is byte-identical" cmp -s "$work/hf/model.safetensors" "$work/hf2/model.safetensors"
"$z" ckpt inspect "$work/nonexistent.h5" >/dev/null 2>&1; rc=$?
check "ckpt on a missing file exits 1" test "$rc" -eq 1

if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all cli checks passed"
