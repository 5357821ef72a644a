#include "trainer/recipe_reference.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "core/comm_config.h"
#include "core/config.h"
#include "core/error.h"
#include "rewards/command_reward.h"
#include "rewards/pipeline.h"
#include "rewards/plugin_reward.h"
#include "trainer/pretrain.h"
#include "trainer/train_recipe.h"

namespace zerorl {
namespace {

// ---- the recipes read ------------------------------------------------------------

// Training recipes whose reads together take every branch of the readers:
// task and data source, template, reward type.  Reward entries are named
// after their type, so that the reference can say which type reads a key.
const char* const kTrainRecipes[] = {
    R"(run: {name: ref}
policy: {init: policy.h5}
data: {source: task, task: {name: addition}}
rewards:
  max_error_rate: 0.5
  clip: 1.0e6
  math: {type: math}
  format: {type: format}
  countdown: {type: countdown}
optimizer: {schedule: cosine}
)",
    R"(run: {name: ref}
policy: {init: policy.h5}
template: {name: custom, text: "{prompt}"}
data: {source: task, task: {name: countdown}}
rewards: {math: {type: math}}
)",
    R"(run: {name: ref}
policy: {init: policy.h5}
data: {source: jsonl, path: /dev/null}
rewards: {math: {type: math}}
)",
    R"(run: {name: ref}
policy: {init: policy.h5}
data: {source: task, task: {name: sum}, curriculum: {}}
rewards: {math: {type: math}}
)",
};

// The command and plug-in rewards, read by the pipeline's entry reader and
// their own (building them would start processes or load a library).
const char* const kOtherRewards = R"(rewards:
  command: {command: "true"}
  plugin: {path: plugin.so, options: {}}
)";

// Pretraining recipes: each architecture (with its attention kind) with
// each task and template, and yarn rope scaling (whose keys include the
// other scalings').  The label is the architecture: a key that only one
// architecture reads, or whose default differs, is shown with it.
struct Variant {
  const char* label;
  const char* text;
};
const Variant kPretrainRecipes[] = {
    {"deepseek_v3", R"(run: {name: ref}
model: {arch: deepseek_v3, rope_scaling: yarn, rope_factor: 4.0,
        rope_original_max_position_embeddings: 64}
corpus: {task: {name: addition}}
pretrain: {steps: 1, batch_size: 1, seq_len: 8}
)"},
    {"qwen2_moe", R"(run: {name: ref}
model: {arch: qwen2_moe, rope_scaling: yarn, rope_factor: 4.0,
        rope_original_max_position_embeddings: 64}
corpus: {task: {name: countdown}, template: {name: custom, text: "{prompt}"}}
pretrain: {steps: 1, batch_size: 1, seq_len: 8}
)"},
    {"deepseek_v3", R"(run: {name: ref}
model: {arch: deepseek_v3}
corpus: {task: {name: countdown}, template: {name: custom, text: "{prompt}"}}
pretrain: {steps: 1, batch_size: 1, seq_len: 8}
)"},
    {"qwen2_moe", R"(run: {name: ref}
model: {arch: qwen2_moe}
corpus: {task: {name: addition}}
pretrain: {steps: 1, batch_size: 1, seq_len: 8}
)"},
    {"deepseek_v3", R"(run: {name: ref}
model: {arch: deepseek_v3}
corpus: {task: {name: sum}, reflect_fraction: 0.05, mix: {steps: 0.1}}
pretrain: {steps: 1, batch_size: 1, seq_len: 8}
)"},
};

struct Group {
  const char* name;
  const char* title;
};
const Group kGroups[] = {
    {"train", "Training recipes: `zerorl train`, `zerorl eval`, `zerorl plan`"},
    {"pretrain", "Pretraining recipes: `zerorl pretrain`"},
};

// Every read, tagged with its group ("train", "pretrain") in the context.
std::vector<RecipeKeyRead> read_every_recipe() {
  RecipeKeyLog log;
  for (const char* text : kTrainRecipes) {
    log.set_context("train|");
    Recipe r = Recipe::from_string(text, "reference.yaml");
    read_train_recipe(r);
    CommConfig::from(r.root());
  }
  Recipe other = Recipe::from_string(kOtherRewards, "reference.yaml");
  const ConfigNode rewards = other.section("rewards");
  for (const char* name : {"command", "plugin"}) {
    const ConfigNode entry = rewards.section(name);
    rewards::RewardEntryConfig::from(entry, name);
  }
  rewards::CommandRewardConfig::from(rewards.section("command"));
  rewards::PluginRewardConfig::from(rewards.section("plugin"));
  for (const Variant& v : kPretrainRecipes) {
    log.set_context(std::string("pretrain|") + v.label);
    Recipe r = Recipe::from_string(v.text, "reference.yaml");
    read_pretrain_recipe(r);
    CommConfig::from(r.root());
  }
  return log.reads();
}

// ---- meanings ------------------------------------------------------------------

struct Meaning {
  const char* key;
  const char* text;
  const char* dflt = nullptr;  // shown instead of the read default, when that misleads
};

// clang-format off
const Meaning kMeanings[] = {
#include "trainer/recipe_meanings.inc"
};
// clang-format on

// Sections a pretraining recipe shares with a training one: their keys mean
// the same, so the meaning is looked up under the training key.
const std::pair<const char*, const char*> kSharedMeanings[] = {
    {"pretrain.optimizer.", "optimizer."},
    {"corpus.task.", "data.task."},
    {"corpus.template.", "template."},
};

const Meaning* find_meaning(const std::map<std::string, const Meaning*>& meanings,
                            const std::string& key) {
  auto it = meanings.find(key);
  if (it != meanings.end()) return it->second;
  for (const auto& [from, to] : kSharedMeanings)
    if (key.rfind(from, 0) == 0) {
      it = meanings.find(to + key.substr(std::string(from).size()));
      if (it != meanings.end()) return it->second;
    }
  return nullptr;
}

// A table cell: '|' escaped, and '<' outside `code` too, so that <think>
// or <dir> is shown rather than taken for HTML.
std::string cell(const std::string& s) {
  std::string out;
  bool code = false;
  for (char c : s) {
    if (c == '`') code = !code;
    if (c == '|' || (c == '<' && !code)) out += '\\';
    out += c;
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// A key's reads, merged over the recipes read.
struct Row {
  std::string group, key, type;
  std::vector<std::string> labels;          // in order of first read
  std::map<std::string, std::string> dflt;  // label -> default as shown
};

bool is_reward_entry_key(const std::string& key) { return key.rfind("rewards.<name>.", 0) == 0; }

}  // namespace

std::string recipe_doc_key(const std::string& path) {
  static const std::set<std::string> kPipelineKeys = {"threads", "max_error_rate", "clip"};
  if (path.rfind("rewards.", 0) != 0) return path;
  const size_t a = 8, b = path.find('.', a);
  if (b == std::string::npos || kPipelineKeys.count(path.substr(a, b - a))) return path;
  return "rewards.<name>" + path.substr(b);
}

std::vector<RecipeKeyDoc> recipe_key_docs() {
  std::vector<Row> rows;
  std::map<std::pair<std::string, std::string>, size_t> index;
  // Per group, the labels seen: the architectures (pretraining) and the
  // reward types (training), to say when a key belongs to only some.
  std::map<std::string, std::vector<std::string>> group_labels, reward_types;
  std::map<std::string, size_t> first_seen;  // "group|dotted prefix" -> order
  for (const RecipeKeyRead& r : read_every_recipe()) {
    const size_t bar = r.context.find('|');
    const std::string group = r.context.substr(0, bar);
    const std::string key = recipe_doc_key(r.path);
    for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1))
      first_seen.emplace(group + "|" + key.substr(0, dot), first_seen.size());
    first_seen.emplace(group + "|" + key, first_seen.size());
    std::string label = r.context.substr(bar + 1);
    if (is_reward_entry_key(key)) {
      label = r.path.substr(8, r.path.find('.', 8) - 8);  // entries are named after their type
      auto& types = reward_types[group];
      if (std::find(types.begin(), types.end(), label) == types.end()) types.push_back(label);
    } else {
      auto& labels = group_labels[group];
      if (std::find(labels.begin(), labels.end(), label) == labels.end()) labels.push_back(label);
    }
    auto [it, fresh] = index.emplace(std::make_pair(group, key), rows.size());
    if (fresh) rows.push_back({group, key, r.type, {}, {}});
    Row& row = rows[it->second];
    // choice() reads a string first: its list of values is the type.
    if (r.type.rfind("one of ", 0) == 0) row.type = r.type;
    if (row.dflt.count(label)) continue;  // the first read of a label gives the default
    row.labels.push_back(label);
    row.dflt[label] = r.required ? "required" : "`" + r.default_text + "`";
  }

  // A section's keys together, and a sub-section's within it (data.task.*):
  // by the order in which each enclosing prefix was first read.
  const auto order = [&first_seen](const Row& row) {
    std::vector<size_t> ranks;
    for (size_t dot = row.key.find('.'); dot != std::string::npos; dot = row.key.find('.', dot + 1))
      ranks.push_back(first_seen.at(row.group + "|" + row.key.substr(0, dot)));
    ranks.push_back(first_seen.at(row.group + "|" + row.key));
    return ranks;
  };
  std::stable_sort(rows.begin(), rows.end(),
                   [&order](const Row& a, const Row& b) { return order(a) < order(b); });

  std::map<std::string, const Meaning*> meanings;
  for (const Meaning& m : kMeanings) meanings[m.key] = &m;
  std::set<const Meaning*> used;
  std::vector<std::string> missing;
  std::vector<RecipeKeyDoc> out;
  for (const Group& g : kGroups)
    for (const Row& row : rows) {
      if (row.group != g.name) continue;
      const Meaning* m = find_meaning(meanings, row.key);
      if (m == nullptr) {
        missing.push_back(row.key);
        continue;
      }
      used.insert(m);
      RecipeKeyDoc d{row.group, row.key, row.type, "", m->text};
      const auto& all =
          is_reward_entry_key(row.key) ? reward_types[row.group] : group_labels[row.group];
      if (row.labels.size() < all.size()) d.type += " (" + join(row.labels) + ")";
      std::set<std::string> distinct;
      for (const auto& [label, text] : row.dflt) distinct.insert(text);
      if (m->dflt != nullptr) {
        d.dflt = m->dflt;
      } else if (row.type == "free-form") {
        d.dflt = "none";
      } else if (distinct.size() == 1) {
        d.dflt = *distinct.begin();
      } else {
        std::vector<std::string> parts;
        for (const auto& label : row.labels)
          parts.push_back(row.dflt.at(label) + " (" + label + ")");
        d.dflt = join(parts);
      }
      out.push_back(d);
    }
  ZR_CHECK(missing.empty(),
           "recipe reference: keys read with no meaning in trainer/recipe_meanings.inc: ",
           join(missing));
  std::vector<std::string> stale;
  for (const Meaning& m : kMeanings)
    if (!used.count(&m)) stale.push_back(m.key);
  ZR_CHECK(
      stale.empty(),
      "recipe reference: trainer/recipe_meanings.inc names keys no reader reads: ", join(stale));
  return out;
}

std::string recipe_reference_markdown() {
  std::ostringstream out;
  out << "# Recipe keys\n\n"
      << "Every key a recipe may hold, with its type, default and meaning. This file is\n"
      << "the output of `zerorl train --list-keys`, made from the readers themselves:\n"
      << "`core/recipe_keys.h` records each key as the commands' readers read it, and the\n"
      << "meanings are in `trainer/recipe_meanings.inc`. The ctest `cli.recipe_keys` fails\n"
      << "when this file differs from that output, and `--list-keys` fails when a key is\n"
      << "read with no meaning or a meaning names a key no reader reads. Regenerate with\n"
      << "`./build/zerorl train --list-keys > docs/RECIPES.md`.\n\n"
      << "An unknown key is an error naming the key and its line; `key.sub=value` on the\n"
      << "command line sets a key; the defaults are written into the run's\n"
      << "`recipe.resolved.yaml`. `rewards.<name>` is one entry per reward, named freely;\n"
      << "which keys it takes depends on its `type` (shown after the key's type). Keys\n"
      << "that only one model architecture reads, or whose default differs between\n"
      << "architectures, say which.\n";
  std::string group, section;
  for (const RecipeKeyDoc& d : recipe_key_docs()) {
    if (d.group != group) {
      group = d.group;
      section.clear();
      for (const Group& g : kGroups)
        if (group == g.name) out << "\n## " << g.title << "\n";
    }
    const std::string top = d.key.substr(0, d.key.find('.'));
    if (top != section) {
      section = top;
      out << "\n### `" << section << "`\n\n| key | type | default | meaning |\n|---|---|---|---|\n";
    }
    out << "| `" << d.key << "` | " << cell(d.type) << " | " << cell(d.dflt) << " | "
        << cell(d.meaning) << " |\n";
  }
  return out.str();
}

}  // namespace zerorl
