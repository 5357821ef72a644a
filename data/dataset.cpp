#include "data/dataset.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/recipe_path.h"

namespace zerorl::data {

using nlohmann::json;

DatasetConfig DatasetConfig::from(const ConfigNode& n) {
  DatasetConfig c;
  c.source = n.choice("source", {"jsonl", "task"}, c.source);
  if (c.source == "jsonl") {
    c.path = resolve_recipe_path(n, "path", n.get<std::string>("path"));
    c.test_path = resolve_recipe_path(n, "test_path", n.get<std::string>("test_path", ""));
    c.prompt_field = n.get<std::string>("prompt_field", c.prompt_field);
    c.answer_field = n.get<std::string>("answer_field", c.answer_field);
    c.on_malformed = n.choice("on_malformed", {"error", "skip"}, c.on_malformed);
    ZR_CHECK(std::filesystem::exists(c.path), n.where("path"), ": ", n.path("path"), ": file '",
             c.path, "' does not exist");
    ZR_CHECK(c.test_path.empty() || std::filesystem::exists(c.test_path), n.where("test_path"),
             ": ", n.path("test_path"), ": file '", c.test_path, "' does not exist");
  } else {
    c.task = TaskConfig::from(n.section("task"));
    c.train_size = n.get<uint64_t>("train_size", c.train_size);
    c.test_size = n.get<uint64_t>("test_size", c.test_size);
    ZR_CHECK(c.train_size > 0, n.where("train_size"), ": ", n.path("train_size"), " must be > 0");
  }
  c.shuffle = n.get<bool>("shuffle", c.shuffle);
  c.seed = n.get<uint64_t>("seed", c.seed);
  c.epochs = n.get<uint64_t>("epochs", c.epochs);
  c.curriculum = CurriculumConfig::from(n);
  return c;
}

static const json* pick_field(const json& obj, const std::string& field,
                              std::initializer_list<const char*> fallbacks, std::string& name) {
  if (field != "auto") {
    name = field;
    return obj.contains(field) ? &obj[field] : nullptr;
  }
  for (const char* f : fallbacks) {
    if (obj.contains(f)) {
      name = f;
      return &obj[f];
    }
  }
  name.clear();
  for (const char* f : fallbacks) name += (name.empty() ? "" : "/") + std::string(f);
  return nullptr;
}

JsonlLoad load_jsonl(const std::string& path, const std::string& prompt_field,
                     const std::string& answer_field, bool skip_malformed) {
  std::ifstream in(path);
  ZR_CHECK(in, "cannot open dataset '", path, "'");
  JsonlLoad out;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::string why;
    Example ex;
    try {
      json obj = json::parse(line);
      std::string pname, aname;
      const json* p = nullptr;
      const json* a = nullptr;
      if (!obj.is_object()) {
        why = "not a JSON object";
      } else if (!(p = pick_field(obj, prompt_field, {"prompt", "question", "problem"}, pname))) {
        why = str_cat("no prompt field '", pname, "'");
      } else if (!p->is_string()) {
        why = str_cat("prompt field '", pname, "' is not a string");
      } else if (!(a = pick_field(obj, answer_field, {"answer", "ground_truth", "solution"},
                                  aname)) ||
                 a->is_null()) {
        why = str_cat("no answer field '", aname, "'");
      } else {
        ex.prompt = p->get<std::string>();
        ex.answer = a->is_string() ? a->get<std::string>() : a->dump();
        if (obj.contains("task") && obj["task"].is_string()) ex.task = obj["task"];
        if (obj.contains("meta") && obj["meta"].is_object()) ex.meta = obj["meta"];
        // The row's other fields are metadata too (a countdown row's
        // "target" and "nums"); an explicit "meta" entry wins a clash.
        for (auto it = obj.begin(); it != obj.end(); ++it) {
          const std::string& k = it.key();
          if (k == pname || k == aname || k == "task" || k == "meta" || k == "id") continue;
          if (!ex.meta.contains(k)) ex.meta[k] = it.value();
        }
        ex.id = obj.contains("id") && obj["id"].is_string() ? obj["id"].get<std::string>()
                                                            : str_cat(path, ":", lineno);
      }
    } catch (const json::exception& e) {
      why = str_cat("invalid JSON (", e.what(), ")");
    }
    if (why.empty()) {
      out.examples.push_back(std::move(ex));
      continue;
    }
    std::string where = str_cat(path, ":", lineno, ": ", why);
    ZR_CHECK(skip_malformed, where, " (set data.on_malformed: skip to skip such lines)");
    ++out.skipped;
    if (out.skip_reasons.size() < 10) out.skip_reasons.push_back(where);
  }
  ZR_CHECK(!in.bad(), "read error on dataset '", path, "'");
  return out;
}

std::vector<Example> load_examples(const DatasetConfig& cfg, Split split) {
  if (cfg.source == "task")
    return make_task(cfg.task)->generate_split(
        split, split == Split::kTrain ? cfg.train_size : cfg.test_size);
  const std::string& path = split == Split::kTrain ? cfg.path : cfg.test_path;
  ZR_CHECK(!path.empty(), "data: no ", split == Split::kTrain ? "path" : "test_path",
           " given for the ", split_name(split), " split");
  JsonlLoad load = load_jsonl(path, cfg.prompt_field, cfg.answer_field, cfg.on_malformed == "skip");
  if (load.skipped) {
    ZR_LOG_WARN("dataset ", path, ": skipped ", load.skipped,
                " malformed line(s); first: ", load.skip_reasons.front());
  }
  ZR_CHECK(!load.examples.empty(), "dataset '", path, "' holds no usable examples");
  return std::move(load.examples);
}

void write_jsonl(const std::string& path, const std::vector<Example>& examples) {
  std::ofstream out(path, std::ios::binary);
  ZR_CHECK(out, "cannot write '", path, "'");
  for (const auto& ex : examples) out << ex.to_jsonl() << '\n';
  out.flush();
  ZR_CHECK(out, "write error on '", path, "'");
}

}  // namespace zerorl::data
