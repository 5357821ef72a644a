#include "trainer/run_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/tensorboard.h"
#include "data/utf8.h"
#include "trainer/checkpoint.h"

namespace fs = std::filesystem;

namespace zerorl {

namespace {

const char* const kJsonlFiles[] = {"metrics.jsonl", "samples.jsonl", "eval.jsonl",
                                   "eval_samples.jsonl"};

// NaN/inf are not JSON: null, which read_metrics_jsonl reads back as NaN.
nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ZR_CHECK(in, "cannot read '", path, "': ", std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void check_key(const std::string& k, const char* what) {
  ZR_CHECK(!k.empty(), what, ": empty key");
  ZR_CHECK(k != "step" && k != "time", what, ": '", k, "' is reserved");
}

// First line where a and b differ, 1-based, for the clobber message.
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  for (int line = 1;; ++line) {
    bool ga = static_cast<bool>(std::getline(sa, la)), gb = static_cast<bool>(std::getline(sb, lb));
    if (!ga && !gb) return "";
    if (!ga) la = "<end of file>";
    if (!gb) lb = "<end of file>";
    if (la != lb || !ga || !gb)
      return str_cat("line ", line, ": existing '", la, "', this run '", lb, "'");
  }
}

void flatten(const nlohmann::json& j, const std::string& prefix,
             std::map<std::string, double>& out) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string key = prefix.empty() ? it.key() : prefix + "/" + it.key();
    if (it->is_number())
      out[key] = it->get<double>();
    else if (it->is_null())
      out[key] = std::nan("");
    else if (it->is_object())
      flatten(*it, key, out);
  }
}

// TensorBoard decodes text cells as UTF-8; a byte-level model can emit any
// byte.  Invalid bytes become U+FFFD, as in samples.jsonl.
std::string valid_utf8(const std::string& s) {
  std::string out;
  size_t start = 0;
  for (;;) {
    const size_t bad = data::utf8_invalid_offset(std::string_view(s).substr(start));
    if (bad == std::string_view::npos) break;
    out.append(s, start, bad);
    out += "\xEF\xBF\xBD";
    start += bad + 1;
  }
  if (start == 0) return s;
  out.append(s, start, std::string::npos);
  return out;
}

std::string text_cell(const std::string& s) { return markdown_code_block(valid_utf8(s)); }

// Resume: rewrites each events file in `dir` without its events of step >
// `step` and without a torn tail; removes the .tmp a crash inside
// write_file_atomic can leave (TensorBoard would read it too).
int64_t truncate_events_after(const std::string& dir, int64_t step) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  std::vector<std::string> files, stray;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file() || !is_events_file_name(entry.path().filename().string()))
      continue;
    (entry.path().extension() == ".tmp" ? stray : files).push_back(entry.path().string());
  }
  ZR_CHECK(!ec, "cannot list '", dir, "': ", ec.message());
  for (const auto& f : stray) remove_tree(f);
  std::sort(files.begin(), files.end());
  int64_t dropped = 0;
  for (const auto& f : files) {
    EventRecords r = read_event_records(f);
    int64_t dropped_here = 0;
    if (!r.error.empty()) {
      ZR_LOG_WARN(r.error, ": dropping the rest of the file (a crash mid-write?)");
      ++dropped_here;
    }
    std::string kept;
    for (const auto& rec : r.records) {
      if (event_step(rec) > step) {
        ++dropped_here;
        continue;
      }
      kept += event_record(rec);
    }
    if (dropped_here > 0) write_file_atomic(f, kept);
    dropped += dropped_here;
  }
  return dropped;
}

// A number cell of the TensorBoard sample table: the JSON text of the value.
std::string number_cell(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return nlohmann::json(v).dump();
}

// samples.jsonl's records as a table: a header row, then one row per sample;
// texts as Markdown code blocks so TensorBoard shows them verbatim.
std::vector<std::vector<std::string>> sample_table(const std::vector<SampleRecord>& samples) {
  std::set<std::string> components, numbers, texts;
  for (const SampleRecord& s : samples) {
    for (const auto& kv : s.components) components.insert(kv.first);
    for (const auto& kv : s.numbers) numbers.insert(kv.first);
    for (const auto& kv : s.texts) texts.insert(kv.first);
  }
  std::vector<std::string> header = {"index", "reward"};
  header.insert(header.end(), components.begin(), components.end());
  header.insert(header.end(), numbers.begin(), numbers.end());
  header.insert(header.end(), texts.begin(), texts.end());
  for (const char* h : {"gold", "prompt", "completion", "reason"}) header.push_back(h);
  std::vector<std::vector<std::string>> rows = {header};
  for (const SampleRecord& s : samples) {
    std::vector<std::string> row = {std::to_string(s.index), number_cell(s.reward)};
    for (const auto& k : components)
      row.push_back(s.components.count(k) ? number_cell(s.components.at(k)) : "");
    for (const auto& k : numbers)
      row.push_back(s.numbers.count(k) ? number_cell(s.numbers.at(k)) : "");
    for (const auto& k : texts) row.push_back(s.texts.count(k) ? text_cell(s.texts.at(k)) : "");
    for (const std::string* t : {&s.gold, &s.prompt, &s.completion, &s.reason})
      row.push_back(text_cell(*t));
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

std::string segment_recipe_name(int n) { return str_cat("recipe.resolved.", n, ".yaml"); }

std::string RunDir::next_segment_recipe() const {
  std::error_code ec;
  int n = 1;
  while (fs::exists(file(segment_recipe_name(n)), ec)) ++n;
  return segment_recipe_name(n);
}

RunConfig RunConfig::from(const ConfigNode& n) {
  RunConfig c;
  c.name = n.get<std::string>("name");
  c.dir = n.get<std::string>("dir", c.dir);
  return c;
}

LogConfig LogConfig::from(const ConfigNode& n) {
  LogConfig c;
  c.level = n.get<std::string>("level", c.level);
  try {
    log::level_from_string(c.level);
  } catch (const Error& e) {
    ZR_THROW(n.where("level"), ": ", n.path("level"), ": ", e.what());
  }
  return c;
}

LoggingConfig LoggingConfig::from(const ConfigNode& n) {
  LoggingConfig c;
  c.tensorboard = n.get<bool>("tensorboard", c.tensorboard);
  return c;
}

void write_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    ZR_CHECK(f, "cannot write '", tmp, "': ", std::strerror(errno));
    size_t n = std::fwrite(text.data(), 1, text.size(), f);
    bool ok = n == text.size() && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
    int err = errno;
    std::fclose(f);
    if (!ok) {
      std::remove(tmp.c_str());
      ZR_THROW("cannot write '", tmp, "': ", std::strerror(err));
    }
  }
  ZR_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename '", tmp, "' to '", path,
           "': ", std::strerror(errno));
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::symlink_status(path, ec);
  if (ec || !fs::exists(st)) return;
  if (fs::is_directory(st)) {
    std::vector<std::string> children;
    for (const auto& e : fs::directory_iterator(path, ec)) children.push_back(e.path().string());
    ZR_CHECK(!ec, "cannot list '", path, "': ", ec.message());
    for (const auto& c : children) remove_tree(c);
  }
  fs::remove(path, ec);
  ZR_CHECK(!ec, "cannot remove '", path, "': ", ec.message());
}

std::string run_dir_path(const std::string& root, const std::string& name) {
  bool ok = !name.empty() && name != "." && name != ".." &&
            name.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                "0123456789._-") == std::string::npos;
  ZR_CHECK(ok, "run name '", name, "' must be letters, digits, '.', '_' or '-'");
  return (fs::path(root) / name).string();
}

RunDir::RunDir(const std::string& root, const std::string& name, const std::string& recipe,
               Mode mode, const LoggingConfig& logging)
    : path_(run_dir_path(root, name)), logging_(logging) {
  std::error_code ec;
  std::string recipe_path = file("recipe.resolved.yaml");
  const bool fresh = mode != Mode::kResume;
  const std::vector<int64_t> steps = fs::exists(file("checkpoints"), ec)
                                         ? list_checkpoint_steps(file("checkpoints"))
                                         : std::vector<int64_t>{};
  if (mode == Mode::kFresh && !steps.empty())
    ZR_THROW("run directory '", path_, "' already holds checkpoints (step ", steps.back(),
             " the newest); continue it with --resume auto, or start it again with --overwrite ",
             "(removes its checkpoints and outputs)");
  if (fs::exists(recipe_path, ec)) {
    std::string old = read_text(recipe_path);
    if (old != recipe && mode != Mode::kOverwrite) {
      ZR_CHECK(
          mode == Mode::kResume, "run directory '", path_,
          "' already holds a different run (its recipe.resolved.yaml differs at ",
          first_difference(old, recipe),
          "); choose another run name, resume it (--resume auto), or replace it (--overwrite)");
      ZR_LOG_WARN("resuming '", path_, "' with a changed recipe (", first_difference(old, recipe),
                  "); the previous one is kept as ", next_segment_recipe());
      write_file_atomic(file(next_segment_recipe()), old);
    }
  }
  if (fresh && fs::exists(path_, ec)) {
    // Start afresh, leaving nothing of the old run that `--resume auto` or a
    // plot could later mistake for this one.
    bool had_outputs = false;
    for (const char* f : kJsonlFiles)
      if (fs::exists(file(f), ec) && fs::file_size(file(f), ec) > 0) had_outputs = true;
    for (const char* d : {"checkpoints", "plots", "tb"})
      if (fs::exists(file(d), ec) && !fs::is_empty(file(d), ec)) had_outputs = true;
    if (fs::exists(file("summary.json"), ec)) had_outputs = true;
    if (had_outputs)
      ZR_LOG_WARN("starting run '", path_, "' afresh: removing its previous metrics, samples, ",
                  "eval, summary, plots, tb and checkpoints");
    for (const char* f : kJsonlFiles) fs::remove(file(f), ec);
    fs::remove(file("summary.json"), ec);
    for (int n = 1; fs::exists(file(segment_recipe_name(n)), ec); ++n)
      fs::remove(file(segment_recipe_name(n)), ec);
    remove_tree(file("plots"));
    remove_tree(file("tb"));
    remove_tree(file("checkpoints"));
  }
  fs::create_directories(path_, ec);
  ZR_CHECK(!ec, "cannot create run directory '", path_, "': ", ec.message());
  write_file_atomic(recipe_path, recipe);
  for (const char* f : kJsonlFiles) {
    if (fs::exists(file(f), ec)) continue;
    std::ofstream out(file(f), std::ios::binary);
    ZR_CHECK(out, "cannot create '", file(f), "': ", std::strerror(errno));
  }
}

RunDir::~RunDir() = default;

EventFileWriter* RunDir::tensorboard() {
  if (!logging_.tensorboard) return nullptr;
  if (!tb_) {
    tb_ = std::make_unique<EventFileWriter>(tensorboard_dir());
    // TensorBoard ignores a run's first START and purges on a later one.
    tb_->add_session_start(resumed_after_ >= 0 ? resumed_after_ + 1 : 0);
  }
  return tb_.get();
}

std::string RunDir::file(const std::string& name) const {
  return (fs::path(path_) / name).string();
}

void RunDir::append_line(const std::string& file_name, const std::string& line) {
  std::string p = file(file_name);
  std::FILE* f = std::fopen(p.c_str(), "ab");
  ZR_CHECK(f, "cannot append to '", p, "': ", std::strerror(errno));
  std::string text = line + "\n";
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = std::fclose(f) == 0 && ok;  // a line is complete on disk (page cache) when this returns
  ZR_CHECK(ok, "cannot append to '", p, "': ", std::strerror(errno));
}

std::string format_metrics_line(int64_t step, const std::map<std::string, double>& values,
                                const std::map<std::string, double>& timings) {
  nlohmann::json j = nlohmann::json::object();
  j["step"] = step;
  for (const auto& [k, v] : values) {
    check_key(k, "metrics");
    j[k] = number(v);
  }
  if (!timings.empty()) {
    nlohmann::json t = nlohmann::json::object();
    for (const auto& [k, v] : timings) t[k] = number(v);
    j["time"] = t;
  }
  return j.dump();
}

void RunDir::append_metrics(int64_t step, const std::map<std::string, double>& values,
                            const std::map<std::string, double>& timings) {
  append_line("metrics.jsonl", format_metrics_line(step, values, timings));
  if (EventFileWriter* tb = tensorboard()) {
    std::map<std::string, double> all = values;
    for (const auto& [k, v] : timings) all["time/" + k] = v;
    tb->add_scalars(step, all);
  }
}

void RunDir::append_samples(int64_t step, const std::vector<SampleRecord>& samples) {
  std::string text;
  for (const SampleRecord& s : samples) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : s.numbers) j[k] = number(v);
    for (const auto& [k, v] : s.texts) j[k] = v;
    j["step"] = step;
    j["index"] = s.index;
    j["prompt"] = s.prompt;
    j["completion"] = s.completion;
    if (!s.gold.empty()) j["gold"] = s.gold;
    j["reward"] = number(s.reward);
    nlohmann::json c = nlohmann::json::object();
    for (const auto& [k, v] : s.components) c[k] = number(v);
    j["components"] = c;
    if (!s.reason.empty()) j["reason"] = s.reason;
    auto texts = [](const std::map<std::string, std::string>& m) {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& [k, v] : m)
        if (!v.empty()) o[k] = v;
      return o;
    };
    if (!texts(s.answers).empty()) j["answers"] = texts(s.answers);
    if (!texts(s.reasons).empty()) j["reasons"] = texts(s.reasons);
    // Invalid UTF-8 in a completion (a byte-level model can emit any byte)
    // is replaced rather than failing the run.
    text += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  if (text.empty()) return;
  text.pop_back();
  append_line("samples.jsonl", text);
  if (EventFileWriter* tb = tensorboard())
    tb->add_text_table(step, "samples", sample_table(samples));
}

void RunDir::append_eval(int64_t step, const std::map<std::string, double>& values) {
  nlohmann::json j = nlohmann::json::object();
  j["step"] = step;
  for (const auto& [k, v] : values) {
    check_key(k, "eval");
    j[k] = number(v);
  }
  append_line("eval.jsonl", j.dump());
  if (EventFileWriter* tb = tensorboard()) tb->add_scalars(step, values, "eval/");
}

void RunDir::append_eval_samples(int64_t step, const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) {
    nlohmann::json j = nlohmann::json::parse(line);
    j["step"] = step;
    text += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  if (text.empty()) return;
  text.pop_back();
  append_line("eval_samples.jsonl", text);
}

void RunDir::write_summary(const nlohmann::json& summary) {
  write_file_atomic(file("summary.json"),
                    summary.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

int64_t RunDir::truncate_after(int64_t step) {
  int64_t dropped = 0;
  for (const char* name : kJsonlFiles) {
    std::string p = file(name);
    std::error_code ec;
    if (!fs::exists(p, ec)) continue;
    std::istringstream in(read_text(p));
    std::string line, kept;
    int64_t n = 0, dropped_here = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.empty()) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object() || !j.contains("step") ||
          !j["step"].is_number_integer()) {
        ZR_LOG_WARN(p, ":", n, ": dropping an unreadable line (a crash mid-write?)");
        ++dropped_here;
        continue;
      }
      if (j["step"].get<int64_t>() > step) {
        ++dropped_here;
        continue;
      }
      kept += line + "\n";
    }
    if (dropped_here > 0) write_file_atomic(p, kept);
    dropped += dropped_here;
  }
  dropped += truncate_events_after(tensorboard_dir(), step);
  resumed_after_ = step;
  return dropped;
}

std::vector<MetricsRow> read_metrics_jsonl(const std::string& path) {
  std::istringstream in(read_text(path));
  std::vector<MetricsRow> rows;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ZR_CHECK(!j.is_discarded() && j.is_object(), path, ":", n, ": not a JSON object");
    ZR_CHECK(j.contains("step") && j["step"].is_number_integer(), path, ":", n,
             ": no integer \"step\"");
    MetricsRow r;
    r.step = j["step"].get<int64_t>();
    j.erase("step");
    flatten(j, "", r.values);
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace zerorl
