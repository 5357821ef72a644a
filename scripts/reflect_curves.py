#!/usr/bin/env python3
"""Print the curves of an r1zero-reflect run (issue 19): held-out pass@1,
response length, reflection rate and accuracy with/without reflection per
evaluation, the training batches' length and reflection rate in windows, and
the least-squares slope of the batch mean response length per 50 steps
(over the first half of the run, over all of it, and in each 50-step
window), and the curriculum level (data.curriculum) where the run has one.

    scripts/reflect_curves.py RUN_DIR            # e.g. runs/r1zero-reflect

Reads RUN_DIR/eval.jsonl and RUN_DIR/metrics.jsonl (docs/OUTPUTS.md); the
standard library only, so that it runs on the device machine too.
"""
import json
import sys


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def slope_per_50(points):
    """Least-squares slope of y on x, times 50; None with < 2 points."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return 50.0 * sum((x - mx) * (y - my) for x, y in points) / sxx


def main(run):
    evals = read(f"{run}/eval.jsonl")
    print(f"held-out evaluation ({run}/eval.jsonl)")
    print("| step | pass@1 | pass@8 | format | tokens | worked | reflection rate | acc. with | acc. without |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for e in evals:
        print(f"| {e['step']} | {fmt(e.get('pass_at_1'))} | {fmt(e.get('pass_at_8'), '.2f')} | "
              f"{fmt(e.get('format_rate'), '.2f')} | {fmt(e.get('mean_response_tokens'), '.1f')} | "
              f"{fmt(e.get('worked_rate'), '.2f')} | {fmt(e.get('reflection_rate'))} | "
              f"{fmt(e.get('reflection_accuracy_with'))} | {fmt(e.get('reflection_accuracy_without'))} |")
    steps = [m for m in read(f"{run}/metrics.jsonl") if "response/length_mean" in m]
    if not steps:
        print("no training steps in metrics.jsonl")
        return 0
    last = steps[-1]["step"]
    width = 10 if last <= 100 else 25
    print(f"\ntraining batches, means over {width}-step windows")
    leveled = any("curriculum/level" in m for m in steps)
    print("| steps |" + (" level |" if leveled else "") +
          " length | accuracy | reflection rate | revision rate | acc. with | acc. without |")
    print("|---|" + ("---|" if leveled else "") + "---:|---:|---:|---:|---:|---:|")
    for lo in range(1, last + 1, width):
        w = [m for m in steps if lo <= m["step"] < lo + width]
        if not w:
            continue
        mean = lambda k: sum(m.get(k) or 0.0 for m in w) / len(w)
        # Accuracy with / without reflection pooled over the window's
        # completions (weights: the reflective share of each step).
        rw = [(m.get("reflection/rate") or 0.0, m.get("reflection/accuracy_with"),
               m.get("reflection/accuracy_without")) for m in w]
        with_w = sum(r for r, a, _ in rw if a is not None)
        without_w = sum(1 - r for r, _, b in rw if b is not None)
        acc_with = sum(r * a for r, a, _ in rw if a is not None) / with_w if with_w else None
        acc_without = (sum((1 - r) * b for r, _, b in rw if b is not None) / without_w
                       if without_w else None)
        levels = sorted({int(m["curriculum/level"]) for m in w if "curriculum/level" in m})
        level = ("-".join(str(v) for v in (levels[0], levels[-1])) if len(levels) > 1
                 else str(levels[0]) if levels else "-")
        print(f"| {lo}-{w[-1]['step']} |" + (f" {level} |" if leveled else "") +
              f" {mean('response/length_mean'):.1f} | "
              f"{mean('reward/accuracy'):.3f} | {mean('reflection/rate'):.3f} | "
              f"{mean('reflection/revision_rate'):.3f} | {fmt(acc_with)} | {fmt(acc_without)} |")
    pts = [(m["step"], m["response/length_mean"]) for m in steps]
    half = [p for p in pts if p[0] <= last / 2]
    print(f"\nbatch mean response length: slope {fmt(slope_per_50(half), '+.2f')} tokens per 50 steps "
          f"over steps 1-{half[-1][0] if half else 0}, {fmt(slope_per_50(pts), '+.2f')} over all {last}")
    windows = []
    for lo in range(1, last + 1, 50):
        w = [p for p in pts if lo <= p[0] < lo + 50]
        if len(w) >= 2:
            windows.append(f"steps {lo}-{w[-1][0]}: {fmt(slope_per_50(w), '+.2f')}")
    print("slope per 50 steps in each 50-step window: " + "; ".join(windows))
    if evals:
        a, b = evals[0], evals[-1]
        print(f"held-out step {a['step']} -> {b['step']}: pass@1 {fmt(a.get('pass_at_1'))} -> "
              f"{fmt(b.get('pass_at_1'))}, tokens {fmt(a.get('mean_response_tokens'), '.1f')} -> "
              f"{fmt(b.get('mean_response_tokens'), '.1f')}, reflection rate "
              f"{fmt(a.get('reflection_rate'))} -> {fmt(b.get('reflection_rate'))}; at the end accuracy "
              f"with reflection {fmt(b.get('reflection_accuracy_with'))}, without "
              f"{fmt(b.get('reflection_accuracy_without'))}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
