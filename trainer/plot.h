// PNG line charts of a run's metrics: runs/<name>/plots/<chart>.png, drawn
// with libpng and a built-in 5x7 bitmap font (no plotting dependency).
//
// A chart is a list of series keys read from metrics.jsonl (nested objects
// flattened with '/', see trainer/run_dir.h).  A key may list alternatives,
// "kl/mean|loss/kl": the first one present in the file is used (for charts
// over runs that named a metric differently).  The default charts use the
// names the trainer logs today.  A key starting with "eval:" is
// read from eval.jsonl instead ("eval:pass_at_1").  A chart none of whose
// keys exist is skipped; NaN/null values leave a gap in the line.
//
// Output is deterministic (same metrics -> same PNG bytes).  Errors (an
// unreadable metrics file, an unwritable plots directory) throw
// zerorl::Error naming the file.  Not thread-safe only in that two calls
// must not write the same file.
#pragma once

#include <string>
#include <vector>

namespace zerorl {

struct ChartSpec {
  std::string name;               // file stem: plots/<name>.png
  std::string title;              // drawn above the chart (defaults to name)
  std::vector<std::string> keys;  // one series each; "a|b" alternatives
};

// reward, accuracy (the reward named "accuracy"), response_length, kl, entropy,
// clip_fraction, eval.
std::vector<ChartSpec> default_chart_specs();
// "name=key1,key2" (keys separated by ',' ; alternatives by '|').  Throws
// zerorl::Error on a missing '=' or an empty name or key list.
ChartSpec parse_chart_spec(const std::string& text);

struct Series {
  std::string label;
  std::vector<double> x, y;  // same length; NaN y = gap
};

// Draws one chart (white background, grid, axes with tick labels, one
// coloured line per series, legend) and writes it as an 8-bit RGB PNG.
void write_line_chart_png(const std::string& path, const std::string& title,
                          const std::string& x_label, const std::vector<Series>& series,
                          int width = 800, int height = 450);

// Reads <run_dir>/metrics.jsonl (and eval.jsonl when present), writes one PNG
// per chart with data into <run_dir>/plots/ (created), returns their paths.
std::vector<std::string> plot_run(const std::string& run_dir,
                                  const std::vector<ChartSpec>& charts = default_chart_specs());

}  // namespace zerorl
