"""Loads folders written by zerorl's save_hf with transformers and compares them
with the reference numbers of the checkpoint they were exported from.

usage: check_hf_reload.py DIR...   (each DIR holds config.json, safetensors and
       reference.safetensors.ref from make_hf_fixtures.py)
Exit 1 when any folder fails to load, its fp32 logits differ by more than 1e-4,
or its greedy continuation differs.
"""
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

bad = 0
for d in sys.argv[1:]:
    ref = load_file(f"{d}/reference.safetensors.ref")
    try:
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    except Exception as e:  # a folder transformers cannot read is the failure we test for
        print(f"FAIL {d}: transformers cannot load it: {e}")
        bad += 1
        continue
    with torch.no_grad():
        diff = (model(ref["tokens"]).logits.float() - ref["logits"]).abs().max().item()
        P, N = ref["prompt"].numel(), ref["greedy"].numel()
        prompt = ref["prompt"][None]
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=N, min_new_tokens=N, do_sample=False,
                             eos_token_id=None, pad_token_id=0)
    same = torch.equal(out[0, P:], ref["greedy"])
    ok = diff <= 1e-4 and same
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {d}: {type(model).__name__} max |logits - ref| {diff:.2e}, greedy ids "
          f"{'equal' if same else 'differ'}")
sys.exit(1 if bad else 0)
