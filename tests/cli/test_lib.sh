# Sourced by the cli test scripts: a scratch folder $work removed at exit,
# `check NAME CONDITION...` (counts failures in $fails), and the tiny
# pretraining and GRPO recipes the scripts start from.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails+1)); fi
}

# write_tiny_pretrain FILE STEPS: a tiny MoE pretrained for STEPS steps on
# 1-2 digit addition, run "pt" under $work/runs (the policy file lands in
# $work/runs/pt/base.h5).
write_tiny_pretrain() {
  cat >"$1" <<YAML
run: {name: pt, dir: $work/runs}
model: {hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, n_routed_experts: 4,
        moe_intermediate_size: 32, intermediate_size: 64, kv_lora_rank: 16, qk_nope_head_dim: 8,
        qk_rope_head_dim: 8, v_head_dim: 8, max_position_embeddings: 128, seed: 1}
corpus: {task: {name: addition, max_digits: 2}}
pretrain: {steps: $2, batch_size: 2, seq_len: 32, output: base.h5, optimizer: {lr: 1.0e-3}}
YAML
}

# write_tiny_train FILE NAME POLICY [SECTION...]: a GRPO recipe on 1-2 digit
# addition from POLICY, run NAME under $work/runs: three steps of 4 prompts x
# 4 completions of at most 12 tokens, accuracy + format rewards, a checkpoint
# every step, no evaluation, no samples.  Each SECTION is a whole top-level
# line ("train: {steps: 2, ...}") that replaces the default of that name, or
# is added when there is none.
write_tiny_train() {
  local file=$1 name=$2 policy=$3 line key
  shift 3
  local -A given=()
  for line in "$@"; do given[${line%%:*}]=$line; done
  local sections=(
    "run: {name: $name, dir: $work/runs}"
    "policy: {init: $policy}"
    "template: {name: tiny}"
    "data: {source: task, task: {name: addition, min_digits: 1, max_digits: 2, seed: 0},
       train_size: 200, test_size: 8, seed: 1}"
    "rollout: {num_slots: 16,
          sampling: {temperature: 1.0, max_new_tokens: 12, stop_strings: [\"</answer>\"]}}"
    "rewards: {threads: 1, accuracy: {type: math}, format: {type: format, weight: 0.5}}"
    "loss: {beta: 0.04}"
    "optimizer: {lr: 1.0e-3, max_grad_norm: 1.0}"
    "train: {steps: 3, prompts_per_step: 4, group_size: 4, sample_every: 0}"
    "eval: {every: 0}"
    "checkpoint: {every: 1}")
  : >"$file"
  for line in "${sections[@]}"; do
    key=${line%%:*}
    echo "${given[$key]-$line}" >>"$file"
    unset "given[$key]"
  done
  for line in "${given[@]}"; do echo "$line" >>"$file"; done
}
