"""A tiny random Hugging Face MoE checkpoint and math data for recipes/r1zero-hf-moe.yaml.

usage: make_tiny_hf_moe.py OUT_DIR [deepseek_v3|deepseek_v2|qwen2_moe|qwen3_moe|olmoe|qwen2|qwen3|llama] [STEPS]

Writes what a user of that recipe brings:
  OUT_DIR/model/       config.json + model.safetensors (save_pretrained of a
                       model of that family (MoE or dense) from random init, then briefly taught the R1 answer format so that
                       sampled groups get different rewards and GRPO has a
                       gradient; a purely random model scores 0 everywhere) and
                       tokenizer.json + tokenizer_config.json: a byte-level BPE
                       trained with `tokenizers` on R1-Zero-style math text,
                       <|endoftext|> as EOS, <think>/<answer> tags as added tokens
  OUT_DIR/train.jsonl  {"problem", "answer"} lines (the recipe's JSONL format)
  OUT_DIR/test.jsonl   held-out lines, same format, disjoint problems
Called from tests/cli/hf_moe_recipe_test.sh and tests/cli/hf_families_test.sh.
"""
import json
import os
import random
import sys

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (DeepseekV2Config, DeepseekV2ForCausalLM, DeepseekV3Config, DeepseekV3ForCausalLM,
                          LlamaConfig, LlamaForCausalLM, OlmoeConfig, OlmoeForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM, Qwen3Config, Qwen3ForCausalLM,
                          Qwen3MoeConfig, Qwen3MoeForCausalLM)

OUT = sys.argv[1]
ARCH = sys.argv[2] if len(sys.argv) > 2 else "deepseek_v3"
MODEL = os.path.join(OUT, "model")
os.makedirs(MODEL, exist_ok=True)
STEPS = int(sys.argv[3]) if len(sys.argv) > 3 else 60  # 0: random weights (parity checks need no training)
rng = random.Random(7)
torch.manual_seed(7)

# The recipe's template (data/template.cpp, r1zero) so that the BPE learns its words.
TEMPLATE = ("A conversation between User and Assistant. The user asks a question, and the Assistant "
            "solves it. The assistant first thinks about the reasoning process in the mind and then "
            "provides the user with the answer. The reasoning process and answer are enclosed within "
            "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
            "process here </think> <answer> answer here </answer>. User: {prompt}. Assistant:")


def problem(r):
    a, b = r.randint(2, 99), r.randint(2, 99)
    kind = r.randrange(3)
    if kind == 0:
        return f"What is {a} + {b}", str(a + b)
    if kind == 1:
        return f"Compute {a} times {b}", str(a * b)
    return f"Solve for x: x - {a} = {b}", str(a + b)


def completion(row):
    return f" <think> {row['answer']} </think> <answer>{row['answer']}</answer>"


# Disjoint train/test problems.
seen, train, test = set(), [], []
while len(train) < 64 or len(test) < 8:
    p, a = problem(rng)
    if p in seen:
        continue
    seen.add(p)
    (test if len(test) < 8 else train).append({"problem": p, "answer": a})
for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
    with open(os.path.join(OUT, name), "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")

# Byte-level BPE (GPT-2 style) trained on rendered prompts and R1-style completions.
lines = []
for row in train + test:
    lines.append(TEMPLATE.replace("{prompt}", row["problem"]))
    lines.append(completion(row))
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=2,
                              special_tokens=[AddedToken("<|endoftext|>", special=True, normalized=False)],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tok.train_from_iterator(lines, trainer)
tok.add_tokens([AddedToken(t, normalized=False) for t in ("<think>", "</think>", "<answer>", "</answer>")])
tok.save(os.path.join(MODEL, "tokenizer.json"))
with open(os.path.join(MODEL, "tokenizer_config.json"), "w") as f:
    json.dump({"eos_token": "<|endoftext|>", "bos_token": None, "pad_token": None}, f)
V = tok.get_vocab_size()
eos = tok.token_to_id("<|endoftext|>")

common = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
              max_position_embeddings=512, tie_word_embeddings=False, bos_token_id=None,
              eos_token_id=eos, pad_token_id=None)
moe = dict(moe_intermediate_size=16, num_experts_per_tok=2)
rope = dict(rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
mla = dict(num_key_value_heads=2, n_shared_experts=1, n_routed_experts=4, kv_lora_rank=16, q_lora_rank=None,
           qk_rope_head_dim=8, v_head_dim=8, qk_nope_head_dim=8, first_k_dense_replace=1,
           routed_scaling_factor=1.0)
if ARCH == "deepseek_v3":
    model = DeepseekV3ForCausalLM(DeepseekV3Config(n_group=1, topk_group=1, norm_topk_prob=True, rope_interleave=True,
                                                   **mla, **moe, **rope, **common))
elif ARCH == "deepseek_v2":
    model = DeepseekV2ForCausalLM(DeepseekV2Config(topk_method="greedy", norm_topk_prob=False, **mla, **moe, **rope,
                                                   **common))
elif ARCH == "qwen2_moe":
    model = Qwen2MoeForCausalLM(Qwen2MoeConfig(num_key_value_heads=1, shared_expert_intermediate_size=32,
                                               num_experts=4, norm_topk_prob=False, decoder_sparse_step=1,
                                               mlp_only_layers=[], **moe, **rope, **common))
elif ARCH == "qwen3_moe":
    model = Qwen3MoeForCausalLM(Qwen3MoeConfig(num_key_value_heads=1, head_dim=16, num_experts=4,
                                               norm_topk_prob=True, **moe, **rope, **common))
elif ARCH == "olmoe":
    c = dict(common, intermediate_size=16)
    model = OlmoeForCausalLM(OlmoeConfig(num_key_value_heads=1, num_experts=4, num_experts_per_tok=2,
                                         norm_topk_prob=False, **rope, **c))
elif ARCH == "qwen2":
    model = Qwen2ForCausalLM(Qwen2Config(num_key_value_heads=1, **rope, **common))
elif ARCH == "qwen3":
    model = Qwen3ForCausalLM(Qwen3Config(num_key_value_heads=1, head_dim=16, **rope, **common))
elif ARCH == "llama":
    model = LlamaForCausalLM(LlamaConfig(num_key_value_heads=1, **rope, **common))
else:
    sys.exit(f"unknown arch '{ARCH}'")
# Teach the format: STEPS Adam steps of LM loss on the completions
# (seconds for this 50K-parameter model).
prompts = [tok.encode(TEMPLATE.replace("{prompt}", row["problem"])).ids for row in train]
answers = [tok.encode(completion(row)).ids + [eos] for row in train]
width = max(len(p) + len(a) for p, a in zip(prompts, answers))
batch = torch.full((len(train), width), eos, dtype=torch.long)
mask = torch.zeros((len(train), width), dtype=torch.long)
labels = torch.full((len(train), width), -100, dtype=torch.long)
for i, (p, a) in enumerate(zip(prompts, answers)):
    n = len(p) + len(a)
    batch[i, :n] = torch.tensor(p + a)
    mask[i, :n] = 1
    labels[i, len(p):n] = torch.tensor(a)  # loss on the completion only
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
model.train()
for step in range(STEPS):
    pick = torch.randint(0, len(train), (16,))
    loss = model(input_ids=batch[pick], attention_mask=mask[pick], labels=labels[pick]).loss
    opt.zero_grad()
    loss.backward()
    opt.step()
model.eval()
model.save_pretrained(MODEL)
print(json.dumps({"final_lm_loss": round(loss.item(), 3) if STEPS else None, "vocab_size": V, "eos_token_id": eos, "train": len(train), "test": len(test),
                  "prompt_tokens": len(tok.encode(TEMPLATE.replace("{prompt}", test[0]["problem"])).ids)}))
