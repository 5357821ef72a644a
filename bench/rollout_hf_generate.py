"""Hugging Face `generate` throughput on the same tiny checkpoint as
bench/rollout_decode.cpp (exported with --export-hf DIR).

    .venv/bin/python bench/rollout_hf_generate.py --model DIR [--batch 1,16,64]
        [--group 1] [--prompt-len 16] [--new 128] [--repeat 3]

Same workload as the C++ side: B prompts of prompt-len random tokens, `group`
completions of each (num_return_sequences), exactly `new` sampled tokens each (min_new_tokens = max_new_tokens, temperature 1,
top-k/top-p off), KV cache on, fp32, best of `repeat` timed runs after a
warm-up, in tokens per wall second and per process-CPU second, and the
process's peak resident memory so far (maxrss).  Threads: torch's intra-op pool, set from OMP_NUM_THREADS.
"""
import argparse
import os
import resource
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", default="1,16,64")
    ap.add_argument("--group", type=int, default=1)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    if "OMP_NUM_THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model.eval()
    vocab = model.config.vocab_size
    print(f"transformers model: {type(model).__name__}, threads: {torch.get_num_threads()}, "
          f"group {a.group}, prompt_len {a.prompt_len}, new tokens {a.new}, best of {a.repeat}")
    print(f"{'batch':>6} {'gen tok/s':>14} {'gen tok/cpu-s':>14} {'maxrss MiB':>10}")
    g = torch.Generator().manual_seed(1)
    for B in [int(x) for x in a.batch.split(",")]:
        ids = torch.randint(0, vocab, (B, a.prompt_len), generator=g)
        mask = torch.ones_like(ids)
        kw = dict(attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                  use_cache=True, pad_token_id=0, eos_token_id=None,
                  num_return_sequences=a.group)
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=4, min_new_tokens=4, **kw)  # warm-up
            best, best_cpu = 0.0, 0.0
            for r in range(a.repeat):
                torch.manual_seed(r)
                t0, c0 = time.perf_counter(), time.process_time()
                out = model.generate(ids, max_new_tokens=a.new, min_new_tokens=a.new, **kw)
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                assert out.shape == (B * a.group, a.prompt_len + a.new), out.shape
                best = max(best, B * a.group * a.new / dt)
                best_cpu = max(best_cpu, B * a.group * a.new / dc)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{B:>6} {best:>14.1f} {best_cpu:>14.1f} {rss:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
