#!/usr/bin/env bash
# Round trips of a zerorl policy through Hugging Face folders (issue 17 item
# 7), on the shipped tiny base (recipes/base-tiny.h5, character tokenizer):
#   * `zerorl export` writes tokenizer.json, tokenizer_config.json and
#     generation_config.json: transformers' AutoTokenizer gives zerorl's
#     prompt ids and decodes them back to the text, and AutoModelForCausalLM's
#     greedy generate() gives `zerorl generate --greedy`'s completion ids,
#     stopping at the same end-of-text token;
#   * zerorl reloads its own export (same ids), `zerorl import` of the export
#     keeps the tokenizer (a policy file: generate and policy.init read it),
#     and export -> import -> export is byte-identical;
#   * a checkpoint step folder is accepted by export and generate.
# Usage: roundtrip_test.sh ZERORL_BINARY PYTHON SOURCE_DIR
# Exit 77 (ctest: skipped) when PYTHON cannot import transformers/tokenizers.
set -uo pipefail
z=$(realpath "$1")
py=$2
src=$(realpath "$3")
source "$(dirname "${BASH_SOURCE[0]}")/test_lib.sh"
if ! "$py" -c 'import transformers, tokenizers' >/dev/null 2>&1; then
  echo "SKIPPED: $py cannot import transformers and tokenizers (run scripts/setup.sh)"
  exit 77
fi
export OMP_NUM_THREADS=1
base=$src/recipes/base-tiny.h5
# The demo's prompts as data/template.cpp's tiny template renders them, plus
# text with every kind of token: tags, specials, a character outside the
# vocabulary (<unk>), newlines and runs of spaces.
prompts=(
  $'User: What is 12 + 30?\nAssistant: <think>'
  $'User: What is 487 + 9?\nAssistant: <think>'
  $'User: What is 5 + 768?\nAssistant: <think>'
  $'<think> a </think>  <answer>42</answer><eos> caf\xc3\xa9 <pad><bos>\n\n~{}|'
)
gen_args=(--greedy --json --max-new-tokens 40)
for p in "${prompts[@]}"; do gen_args+=(--prompt "$p"); done

"$z" export --ckpt "$base" --hf "$work/exp" >"$work/log" 2>&1
check "export runs" test $? -eq 0 || cat "$work/log"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json; do
  check "export wrote $f" test -s "$work/exp/$f"
done
"$z" generate --model "$base" "${gen_args[@]}" >"$work/base.jsonl" 2>>"$work/log"
check "generate from the policy file runs" test $? -eq 0 || cat "$work/log"

# transformers is the oracle: tokenizer ids, decode, greedy completion ids.
"$py" - "$work/exp" "$work/base.jsonl" <<'PY'
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
exp, gen = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(exp)
model = AutoModelForCausalLM.from_pretrained(exp, dtype=torch.float32).eval()
bad = 0
def check(name, ok, detail=""):
    global bad
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f": {detail}"))
check("config.json eos_token_id is the tokenizer's eos", model.config.eos_token_id == tok.eos_token_id,
      f"{model.config.eos_token_id} vs {tok.eos_token_id}")
check("generation_config.json eos_token_id is the tokenizer's eos",
      model.generation_config.eos_token_id == tok.eos_token_id,
      f"{model.generation_config.eos_token_id} vs {tok.eos_token_id}")
stopped = 0
for line in open(gen):
    g = json.loads(line)
    p = g["prompt"]
    ids = tok(p)["input_ids"]
    check(f"AutoTokenizer ids = zerorl's for {p[-40:]!r}", ids == g["prompt_tokens"],
          f"{ids} vs {g['prompt_tokens']}")
    # A character outside the vocabulary (the e-acute) comes back as <unk>.
    check(f"AutoTokenizer decodes them back to the text", tok.decode(ids) == p.replace("\u00e9", "<unk>"),
          repr(tok.decode(ids)))
    x = torch.tensor([g["prompt_tokens"]])
    with torch.no_grad():
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=40,
                             do_sample=False)
    want = out[0, x.shape[1]:].tolist()
    check(f"HF greedy generate = zerorl generate --greedy ({len(want)} tokens, finish {g['finish']})",
          want == g["tokens"], f"{want} vs {g['tokens']}")
    # zerorl's completion text leaves out the end-of-text token that ended it.
    body = g["tokens"][:-1] if g["finish"] == "eos" else g["tokens"]
    check("zerorl's completion text = AutoTokenizer's decode", tok.decode(body) == g["completion"],
          f"{tok.decode(body)!r} vs {g['completion']!r}")
    stopped += g["finish"] == "eos"
# Otherwise the eos ids above would go unexercised.
check("some completions end at the end-of-text token", stopped > 0, "none did")
sys.exit(1 if bad else 0)
PY
check "transformers agrees with zerorl on the export" test $? -eq 0

# zerorl reads its own export, and import keeps the tokenizer.
"$z" generate --model "$work/exp" "${gen_args[@]}" >"$work/exp.jsonl" 2>>"$work/log"
check "zerorl generate on its export = on the policy file" cmp -s "$work/base.jsonl" "$work/exp.jsonl"
"$z" import --hf "$work/exp" --out "$work/imp.h5" >>"$work/log" 2>&1
check "import of the export runs" test $? -eq 0 || cat "$work/log"
"$z" generate --model "$work/imp.h5" "${gen_args[@]}" >"$work/imp.jsonl" 2>>"$work/log"
check "the imported file keeps the tokenizer (same generate output)" \
  cmp -s "$work/base.jsonl" "$work/imp.jsonl"
"$z" export --ckpt "$work/imp.h5" --hf "$work/exp2" >>"$work/log" 2>&1
for f in model.safetensors config.json tokenizer.json tokenizer_config.json generation_config.json; do
  check "export -> import -> export: $f byte-identical" cmp -s "$work/exp/$f" "$work/exp2/$f"
done

# A checkpoint step folder (a short run from the base), and the imported
# file as a recipe's policy.init (it evaluates as the base does).
cat >"$work/train.yaml" <<YAML
run: {name: rt, dir: $work/runs}
policy: {init: $base}
template: {name: tiny}
data:
  source: task
  task: {name: addition, min_digits: 1, max_digits: 2, seed: 0}
  train_size: 50
  test_size: 2
  seed: 1
rollout: {num_slots: 8, sampling: {temperature: 1.0, max_new_tokens: 16}}
rewards: {threads: 1, accuracy: {type: math}, format: {type: format, weight: 0.5}}
loss: {beta: 0.0}
optimizer: {lr: 3.0e-3}
train: {steps: 1, prompts_per_step: 2, group_size: 2}
eval: {every: 0}
checkpoint: {every: 1}
YAML
"$z" eval "$work/train.yaml" --json >"$work/eval_base" 2>"$work/eval.log"
"$z" eval "$work/train.yaml" "policy.init=$work/imp.h5" --json >"$work/eval_imp" 2>>"$work/eval.log"
check "the imported file works as policy.init (its evaluation = the base's)" \
  test -s "$work/eval_base" -a "$(cat "$work/eval_base")" = "$(cat "$work/eval_imp")"
"$z" train "$work/train.yaml" >"$work/train.log" 2>&1
check "a short run writes a checkpoint" test -d "$work/runs/rt/checkpoints/step_1" || cat "$work/train.log"
step=$work/runs/rt/checkpoints/step_1
"$z" generate --model "$step" "${gen_args[@]}" >"$work/step.jsonl" 2>>"$work/log"
check "generate accepts a checkpoint step folder" test $? -eq 0 || cat "$work/log"
"$z" generate --model "$step/rank_0.h5" "${gen_args[@]}" >"$work/rank0.jsonl" 2>>"$work/log"
check "... the same output as from its rank file" cmp -s "$work/step.jsonl" "$work/rank0.jsonl"
check "... and not the base's (the step moved the weights)" \
  test "$(jq -c .logprobs "$work/step.jsonl")" != "$(jq -c .logprobs "$work/base.jsonl")"
"$z" export --ckpt "$step" --hf "$work/exp_step" >>"$work/log" 2>&1
check "export accepts a checkpoint step folder" test $? -eq 0 || cat "$work/log"
"$z" generate --model "$work/exp_step" "${gen_args[@]}" >"$work/exp_step.jsonl" 2>>"$work/log"
check "zerorl generate on the step's export = on the step" \
  cmp -s <(jq -c 'del(.logprobs)' "$work/step.jsonl") <(jq -c 'del(.logprobs)' "$work/exp_step.jsonl")
# A corrupt step is refused by name.
cp -r "$step" "$work/bad_step"
printf 'x' | dd of="$work/bad_step/rank_0.h5" bs=1 seek=5000 conv=notrunc status=none
"$z" export --ckpt "$work/bad_step" --hf "$work/exp_bad" >"$work/bad.log" 2>&1
check "export refuses a corrupt step folder" grep -q "fails verification" "$work/bad.log"

if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all round-trip checks passed"
