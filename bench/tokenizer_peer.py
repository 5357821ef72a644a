"""Peer side of the tokenizer throughput benchmark (bench/tokenizer_throughput.cpp).

  tokenizer_peer.py prepare DIR [--mb 4]
      trains the parity test's tokenizers into DIR (qwen2.json, gpt2.json, ...)
      and writes DIR/text.json: a JSON list of lines, about --mb MB of generated
      multilingual, code and math text (a different seed from training).
  tokenizer_peer.py run --tokenizer FILE --text DIR/text.json [--repeat 5]
      encodes every line with Hugging Face `tokenizers`, single-threaded
      (run with RAYON_NUM_THREADS=1), and prints MB/s for per-line encode()
      and for encode_batch(), best of --repeat, after one warm-up pass.
"""
import argparse
import importlib.util
import json
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def oracle():
    path = os.path.join(HERE, "..", "tests", "data", "bpe_oracle.py")
    spec = importlib.util.spec_from_file_location("bpe_oracle", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def prepare(out_dir, mb):
    os.makedirs(out_dir, exist_ok=True)
    o = oracle()
    o.train(out_dir)
    lines, size, seed = [], 0, 99
    while size < mb * 1e6:
        chunk = o.corpus(seed, 5000)
        seed += 1
        lines += chunk
        size += sum(len(s.encode()) for s in chunk)
    with open(os.path.join(out_dir, "text.json"), "w", encoding="utf-8") as f:
        json.dump(lines, f, ensure_ascii=False)
    print(f"wrote {len(lines)} lines, {size / 1e6:.2f} MB")


def run(tok_path, text_path, repeat):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    with open(text_path, encoding="utf-8") as f:
        lines = json.load(f)
    mb = sum(len(s.encode()) for s in lines) / 1e6

    def per_line():
        return sum(len(tok.encode(s, add_special_tokens=False).ids) for s in lines)

    def batch():
        return sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False))

    for name, fn in (("encode", per_line), ("encode_batch", batch)):
        tokens = fn()  # warm-up (fills the word cache, as zerorl's run does)
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        print(f"tokenizers {name}: {mb / best:.2f} MB/s ({tokens} tokens, {mb:.2f} MB, "
              f"best of {repeat}, RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'unset')})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=["prepare", "run"])
    ap.add_argument("dir", nargs="?")
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--tokenizer")
    ap.add_argument("--text")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    if a.action == "prepare":
        prepare(a.dir, a.mb)
    else:
        run(a.tokenizer, a.text, a.repeat)
