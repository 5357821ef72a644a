# Sourced by the cli test scripts: a scratch folder $work removed at exit,
# `check NAME CONDITION...` (counts failures in $fails), and the tiny
# pretraining recipe the scripts start from.
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
