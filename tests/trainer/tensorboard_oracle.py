"""TensorBoard's own readers as the oracle for a run's tb/ event files.

Usage: tensorboard_oracle.py RUN_DIR

Reads RUN_DIR/tb/ with the `tensorboard` package (the version pinned in
scripts/requirements.txt) and compares it with the run's JSONL files:

  * every record of every events file passes TensorBoard's record reader
    (its length and data CRC-32C checks) to the end of the file;
  * plugin_event_accumulator.EventAccumulator, keeping every event, with
    orphan purging off (so that the resume truncation is what is tested, not
    TensorBoard's repair of it) and on (what the TensorBoard UI does, so that
    the SessionLog START of a resumed file purges nothing it should keep),
    holds for every metrics.jsonl line and key
    (nested "time" flattened to "time/<name>") exactly one scalar at that
    step under that tag, a float32 equal to the JSONL's double rounded to
    float32 (the precision TensorBoard's scalars have), and nothing else; the same for
    eval.jsonl under "eval/<name>";
  * for every step of samples.jsonl, the text summary "samples" is a table
    with a header row and one row per logged sample whose completion,
    prompt, gold answer, index and reward are the JSONL's.

Prints each mismatch and exits 1 if there is any, 0 otherwise.
"""

import glob
import json
import math
import os
import sys

import numpy as np
from tensorboard.backend.event_processing import plugin_event_accumulator as pea
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow
from tensorboard.util import tensor_util

problems = []


def problem(msg):
    problems.append(msg)
    print("MISMATCH:", msg)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def flatten(obj, prefix=""):
    out = {}
    for k, v in obj.items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(flatten(v, key + "/"))
        else:
            out[key] = v
    return out


def same(a, b):
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return a == b


def code_block_text(cell):
    """The text of a Markdown indented code block (4 spaces per line)."""
    lines = cell.split("\n")
    for line in lines:
        if not line.startswith("    "):
            raise ValueError("not a code block: %r" % cell)
    return "\n".join(line[4:] for line in lines)


def main(run_dir):
    tb = os.path.join(run_dir, "tb")
    files = sorted(glob.glob(os.path.join(tb, "*tfevents*")))
    if not files:
        problem("no events file in " + tb)
        return
    print("events files:", [os.path.basename(f) for f in files])

    # 1. TensorBoard's record reader, CRCs included, reads every file to its end.
    for f in files:
        reader = pywrap_tensorflow.PyRecordReader_New(f)
        n = 0
        while True:
            try:
                reader.GetNext()
            except errors.OutOfRangeError:
                break
            except errors.DataLossError as e:
                problem("record %d of %s: %s" % (n, os.path.basename(f), e))
                break
            n += 1
        print("%s: %d records" % (os.path.basename(f), n))

    for purge in (False, True):
        print("EventAccumulator, purge_orphaned_data=%s" % purge)
        compare(run_dir, tb, purge)


def compare(run_dir, tb, purge):
    # 2. Everything the accumulator holds, per tag and step.
    acc = pea.EventAccumulator(tb, size_guidance={pea.TENSORS: 0}, purge_orphaned_data=purge)
    acc.Reload()
    got = {}  # (tag, step) -> [ndarray, ...]
    plugin = {}
    for tag in acc.Tags()["tensors"]:
        plugin[tag] = acc.SummaryMetadata(tag).plugin_data.plugin_name
        for ev in acc.Tensors(tag):
            got.setdefault((tag, ev.step), []).append(tensor_util.make_ndarray(ev.tensor_proto))
    for key, vals in got.items():
        if len(vals) != 1:
            problem("%s at step %d written %d times" % (key[0], key[1], len(vals)))

    # 3. Scalars: metrics.jsonl and eval.jsonl, both ways.
    want = {}
    for line in read_jsonl(os.path.join(run_dir, "metrics.jsonl")):
        step = line.pop("step")
        for k, v in flatten(line).items():
            want[(k, step)] = v
    for line in read_jsonl(os.path.join(run_dir, "eval.jsonl")):
        step = line.pop("step")
        for k, v in line.items():
            want[("eval/" + k, step)] = v
    scalar_keys = {k for k in got if plugin[k[0]] == "scalars"}
    for key in sorted(set(want) - scalar_keys):
        problem("%s at step %d is in the JSONL but not in TensorBoard" % key)
    for key in sorted(scalar_keys - set(want)):
        problem("%s at step %d is in TensorBoard but not in the JSONL" % key)
    for key in sorted(set(want) & scalar_keys):
        arr = got[key][0]
        # float32, what TensorBoard's data server reads (core/tensorboard.h).
        if arr.dtype.name != "float32" or arr.shape != ():
            problem("%s: a %s %s tensor, not a float32 scalar" % (key[0], arr.dtype, arr.shape))
        expect = None if want[key] is None else float(np.float32(want[key]))
        if not same(float(arr.item()), expect):
            problem("%s at step %d: TensorBoard %r, JSONL %r" % (key + (arr.item(), want[key])))
    print("%d scalars compared" % len(set(want) & scalar_keys))

    # 4. The sample tables.
    samples = {}
    for s in read_jsonl(os.path.join(run_dir, "samples.jsonl")):
        samples.setdefault(s["step"], []).append(s)
    if not samples:
        problem("samples.jsonl is empty: nothing to compare the text summaries with")
    text_keys = {k for k in got if plugin[k[0]] == "text"}
    if {k[0] for k in text_keys} - {"samples"}:
        problem("unexpected text tags %s" % sorted({k[0] for k in text_keys}))
    if {k[1] for k in text_keys} != set(samples):
        problem("text summaries at steps %s, samples.jsonl at %s"
                % (sorted(k[1] for k in text_keys), sorted(samples)))
    for step, rows in sorted(samples.items()):
        if ("samples", step) not in got:
            continue
        table = got[("samples", step)][0]
        if table.ndim != 2 or table.shape[0] != len(rows) + 1:
            problem("samples at step %d: shape %s for %d samples" % (step, table.shape, len(rows)))
            continue
        cells = [[c.decode("utf-8") for c in r] for r in table]
        header = cells[0]
        for s, row in zip(rows, cells[1:]):
            cell = dict(zip(header, row))
            try:
                for field in ("completion", "prompt", "gold"):
                    if code_block_text(cell[field]) != s.get(field, ""):
                        problem("samples at step %d, index %d: %s %r, JSONL %r"
                                % (step, s["index"], field, cell[field], s.get(field)))
                if int(cell["index"]) != s["index"] or not same(float(cell["reward"]), s["reward"]):
                    problem("samples at step %d: row %r, JSONL index %d reward %r"
                            % (step, row, s["index"], s["reward"]))
            except (KeyError, ValueError) as e:
                problem("samples at step %d: %s (header %s)" % (step, e, header))
    print("%d sample tables compared" % len(samples))


if __name__ == "__main__":
    main(sys.argv[1])
    sys.exit(1 if problems else 0)
