"""Peer timing for bench_rewards_grade: math-verify's gradings per second on
the same numeric and symbolic cases, one process, one core.

    .venv/bin/python bench/rewards_math_verify_peer.py [--seconds S]

Each grading is parse(gold) + parse(completion) + verify, as math-verify's
README shows for a reward function.
"""
import argparse
import time

from math_verify import parse, verify


def completion(answer):
    think = "<think>Let me work through this. "
    for i in range(6):
        think += f"We have $x_{i} = {3 * i + 1}$, so adding gives the next term. "
    return think + "</think>\n<answer>The final answer is $\\boxed{" + answer + "}$.</answer>"


NUMERIC = [("42", "42"), ("42", "41"), ("0.5", "\\frac{1}{2}"), ("1000", "1,000"), ("-17", "-17"),
           ("3.75", "3.750"), ("\\frac{7}{3}", "7/3"), ("12", "\\dfrac{24}{2}"), ("2^{10}", "1024"),
           ("28\\%", "28")]
SYMBOLIC = [("3\\sqrt{13}", "\\sqrt{117}"), ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"),
            ("\\frac{9\\pi}{4}", "\\frac94\\pi"), ("x^2-4", "(x-2)(x+2)"),
            ("\\frac{x+2}{7}", "\\frac{x}{7}+\\frac{2}{7}"), ("1+\\sqrt{5}", "\\sqrt{5}+1"),
            ("2\\sqrt{3}", "\\sqrt{13}"), ("\\pi r^2", "r^2\\pi")]


def bench(cases, seconds):
    comps = [completion(a) for _, a in cases]
    golds = ["$" + g + "$" for g, _ in cases]
    correct = sum(bool(verify(parse(g), parse(c))) for g, c in zip(golds, comps))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for g, c in zip(golds, comps):
            verify(parse(g), parse(c))
        n += len(cases)
    return n / (time.perf_counter() - t0), correct


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    for name, cases in (("numeric", NUMERIC), ("symbolic", SYMBOLIC)):
        rate, correct = bench(cases, a.seconds)
        print(f"math-verify {name:9s} {rate:9.0f} gradings/s  {1e6 / rate:9.1f} us each  ({correct}/{len(cases)} correct)")
