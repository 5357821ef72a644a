#!/bin/bash
# The recipe reference (issue 17 item 9): `zerorl train --list-keys` lists
# every key the readers read, with type, default and meaning (it fails while
# a key has no meaning or a meaning names no key), and docs/RECIPES.md is
# exactly its output.  Also: the command lists of ARCHITECTURE.md and
# README.md name only commands and flags that exist, and `zerorl eval` on a
# recipe without a reward named `format` says which key to set.
set -u
zerorl=$1
src=$2
. "$(dirname "$0")/test_lib.sh"

out=$work/keys.md
"$zerorl" train --list-keys >"$out" 2>"$work/keys.err"
check "--list-keys succeeds" test $? = 0
cat "$work/keys.err"
for key in train.steps rollout.sampling.max_new_tokens rewards.threads 'rewards.<name>.weight' \
  'rewards.<name>.command' data.task.num_count eval.format_reward comm.timeout_s \
  model.n_routed_experts corpus.mix.bare pretrain.optimizer.lr; do
  check "lists $key" grep -qF "| \`$key\` |" "$out"
done
for gone in reward_threads rollout.sampling.seed 'rewards.<name>.prompt_opens_think'; do
  check "does not list $gone" bash -c "! grep -qF '| \`$gone\` |' '$out'"
done
if diff -u "$src/docs/RECIPES.md" "$out"; then
  check "docs/RECIPES.md is --list-keys" true
else
  echo "regenerate: ./build/zerorl train --list-keys > docs/RECIPES.md"
  check "docs/RECIPES.md is --list-keys" false
fi

# The command lists of docs/ARCHITECTURE.md and README.md name only
# commands that exist, each with flags its --help knows.
declare -A helps=()  # each command's --help, asked once (the binary starts in ~0.5 s)
for doc in docs/ARCHITECTURE.md README.md; do
  while read -r _ cmd rest; do
    if [ "$cmd" = --version ]; then
      check "$doc: zerorl --version" "$zerorl" --version
      continue
    fi
    if [ -z "${helps[$cmd]+set}" ]; then
      helps[$cmd]=$("$zerorl" "$cmd" --help 2>&1) || helps[$cmd]=""
    fi
    help=${helps[$cmd]}
    check "$doc: zerorl $cmd exists" test -n "$help"
    for flag in $(grep -oE -- '--[a-z][a-z-]*' <<<"$rest"); do
      check "$doc: zerorl $cmd $flag exists" grep -qF -- "$flag" <<<"$help"
    done
  done < <(awk '/^```/ { inside = !inside; next } inside && /^zerorl /' "$src/$doc")
done

# eval.format_reward defaults to `format`: a recipe without that reward is
# told what to set.
write_tiny_train "$work/nofmt.yaml" nofmt "$src/recipes/base-tiny.h5" \
  "rewards: {threads: 1, accuracy: {type: math}}"
"$zerorl" eval "$work/nofmt.yaml" >"$work/eval.out" 2>&1
rc=$?
check "eval without a format reward fails" test $rc != 0
check "and says to set eval.format_reward" \
  grep -qF "set eval.format_reward to one of them, or to \"\" for none" "$work/eval.out"
"$zerorl" eval "$work/nofmt.yaml" 'eval.format_reward=""' eval.num_problems=1 eval.k=1 \
  eval.greedy=false >"$work/eval2.out" 2>&1
check "eval.format_reward=\"\" evaluates" test $? = 0
[ $fails = 0 ] || { cat "$work/eval.out"; tail -5 "$work/eval2.out"; }
echo "$fails failure(s)"
[ $fails = 0 ]
