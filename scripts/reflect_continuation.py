#!/usr/bin/env python3
"""Does a base go on with the chain after a check?  (issue 19, docs/REPRODUCTION.md)

Teacher-forces 40 problems of 3-5 two-digit terms, each cut after a pair k
of its running sums that is not the last, in two forms:
  plain    "<think> a+b=s. ... x+y=v."
  checked  the same, then "Wait, let me recheck x+y: <columns> x+y=v."
and counts, at greedy, how often the base's next words are the chain's next
step " v+t=" (t the next term of the question).  A base that has learned
to go on after a check scores about as well on both.

With --chain remaining every step names the terms left ("a+b=s, left c+d."),
as the sum task's `chain: remaining` writes it, the check's restatement too.

  scripts/reflect_continuation.py runs/base-reflect12/base.h5 [--zerorl build/zerorl] [--so]
      [--chain running|remaining] [--digits D]
"""
import argparse
import json
import os
import random
import subprocess


def columns(a, b):
    """The sum task's columns (data/arithmetic_task.cpp), without the closing line."""
    sa, sb = str(a), str(b)
    out, carry = "", 0
    for i in range(max(len(sa), len(sb))):
        da = int(sa[-1 - i]) if i < len(sa) else 0
        db = int(sb[-1 - i]) if i < len(sb) else 0
        s = da + db + carry
        out += f"{da}+{db}{'+1' if carry else ''}={s}, write {s % 10}"
        carry = s // 10
        out += " carry 1. " if carry else ". "
    if carry:
        out += "write 1. "
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--zerorl", default="build/zerorl")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--so", action="store_true",
                    help="end the check 'So x+y=v.' as corpora before 2169255 did")
    ap.add_argument("--chain", choices=["running", "remaining"], default="running")
    ap.add_argument("--digits", type=int, default=2, help="digits per term (2: 10-99)")
    a = ap.parse_args()

    def step(x, y, v, t, i):
        """Pair i (adding t[i]) as the chain writes it."""
        left = "+".join(map(str, t[i + 1:])) if a.chain == "remaining" else ""
        return f"{x}+{y}={v}" + (f", left {left}" if left else "") + "."
    rng = random.Random(a.seed)
    cases = []
    for _ in range(a.n):
        n = rng.choice([3, 4, 5])
        t = [rng.randint(10 ** (a.digits - 1), 10 ** a.digits - 1) for _ in range(n)]
        k = rng.randint(1, n - 2)  # pairs 1..k written; pair k+1 comes next
        acc, chain = t[0], ""
        for i in range(1, k + 1):
            chain += step(acc, t[i], acc + t[i], t, i) + " "
            x, y, last = acc, t[i], i
            acc += t[i]
        head = "User: What is " + " + ".join(map(str, t)) + "?\nAssistant: <think> "
        checked = head + chain + f"Wait, let me recheck {x}+{y}: " + columns(x, y) + ("So " if a.so else "") + step(x, y, x + y, t, last)
        cases.append((head + chain.strip(), checked, f" {acc}+{t[k + 1]}="))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for form, idx in (("plain", 0), ("checked", 1)):
        cmd = [a.zerorl, "generate", "--model", a.model, "--greedy", "--max-new-tokens", "16",
               "--json", "--slots", str(a.n)]
        for c in cases:
            cmd += ["--prompt", c[idx]]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        right = sum(r["completion"].startswith(c[2]) for r, c in zip(rows, cases))
        ends = sum(r["completion"].lstrip().startswith("So ") for r in rows)
        print(f"{form:8s} next step right {right}/{len(cases)}, "
              f"writes the last line ('So ...') {ends}/{len(cases)}")


if __name__ == "__main__":
    main()
