// The recipe reference (issue 17 item 9, trainer/recipe_reference.h): the
// key log records what the readers read, every key has a type, default and
// meaning, and the shipped recipes hold no key the reference leaves out (a
// reader branch the reference's own recipes would miss).  The ctest
// cli.recipe_keys checks that docs/RECIPES.md is `zerorl train --list-keys`.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "core/comm_config.h"
#include "core/config.h"
#include "core/recipe_keys.h"
#include "trainer/pretrain.h"
#include "trainer/recipe_reference.h"
#include "trainer/train_recipe.h"

namespace zerorl {
namespace {

namespace fs = std::filesystem;

TEST(RecipeKeyLog, RecordsPathTypeAndDefaultOfEveryRead) {
  Recipe r = Recipe::from_string("a: {b: 3, c: x, d: {k: [1]}}\n");
  const ConfigNode a = r.section("a");
  a.get<long>("before", 1);  // no log alive: nothing recorded
  std::vector<RecipeKeyRead> reads;
  {
    RecipeKeyLog log;
    log.set_context("ctx");
    a.get<long>("b", 5);
    a.get<double>("e", 0.25);
    a.choice("c", {"x", "y"}, "y");
    a.get<std::vector<std::string>>("f", {});
    a.raw("d");
    EXPECT_THROW(a.get<unsigned long>("g"), Error);  // required and absent, still recorded
    reads = log.reads();
  }
  a.get<long>("after", 1);
  ASSERT_EQ(reads.size(), 7u);  // choice() is a string read, then the choice
  const auto at = [&](size_t i) {
    const auto& x = reads[i];
    return x.path + "|" + x.type + "|" + x.default_text + "|" + (x.required ? "req" : "opt") + "|" +
           x.context;
  };
  EXPECT_EQ(at(0), "a.b|integer|5|opt|ctx");
  EXPECT_EQ(at(1), "a.e|number|0.25|opt|ctx");
  EXPECT_EQ(at(2), "a.c|string|y|opt|ctx");
  EXPECT_EQ(at(3), "a.c|one of x, y|y|opt|ctx");
  EXPECT_EQ(at(4), "a.f|list of strings|[]|opt|ctx");
  EXPECT_EQ(at(5), "a.d|free-form||opt|ctx");
  EXPECT_EQ(at(6), "a.g|integer >= 0||req|ctx");
  RecipeKeyLog again;  // the log ended with its scope
  EXPECT_TRUE(again.reads().empty());
}

TEST(RecipeReference, EveryKeyHasTypeDefaultAndMeaning) {
  const auto docs = recipe_key_docs();  // throws on a key without meaning
  std::map<std::string, std::set<std::string>> keys;
  for (const auto& d : docs) {
    EXPECT_FALSE(d.type.empty()) << d.key;
    EXPECT_FALSE(d.dflt.empty()) << d.key;
    EXPECT_FALSE(d.meaning.empty()) << d.key;
    EXPECT_TRUE(keys[d.group].insert(d.key).second) << d.key << " listed twice";
  }
  // One key of each reader and branch, with what the readers say about it.
  for (const char* k : {"run.name",
                        "policy.init",
                        "template.text",
                        "data.task.num_count",
                        "data.task.min_digits",
                        "data.path",
                        "rollout.sampling.stop_strings",
                        "rewards.threads",
                        "rewards.<name>.weight",
                        "rewards.<name>.boxed",
                        "rewards.<name>.mode",
                        "rewards.<name>.max_chars",
                        "rewards.<name>.command",
                        "rewards.<name>.options",
                        "advantage.estimator",
                        "loss.beta",
                        "train.steps",
                        "optimizer.total_steps",
                        "eval.format_reward",
                        "checkpoint.every",
                        "log.level",
                        "logging.tensorboard",
                        "comm.timeout_s"})
    EXPECT_TRUE(keys["train"].count(k)) << k;
  for (const char* k :
       {"model.arch", "model.kv_lora_rank", "model.head_dim", "model.rope_beta_fast",
        "model.shared_expert_intermediate_size", "model.n_shared_experts", "corpus.mix.bare",
        "corpus.task.num_count", "pretrain.seq_len", "pretrain.optimizer.lr", "comm.backend"})
    EXPECT_TRUE(keys["pretrain"].count(k)) << k;
  std::map<std::string, RecipeKeyDoc> train;
  for (const auto& d : docs)
    if (d.group == "train") train[d.key] = d;
  EXPECT_EQ(train["train.steps"].dflt, "`100`");
  EXPECT_EQ(train["run.name"].dflt, "required");
  EXPECT_EQ(train["loss.aggregation"].type, "one of grpo, dapo, dr_grpo, cispo");
  EXPECT_EQ(train["rewards.<name>.timeout_ms"].type, "number (math, command)");
  EXPECT_EQ(train["rewards.<name>.timeout_ms"].dflt, "`1000` (math), `5000` (command)");
  EXPECT_EQ(train["rewards.max_error_rate"].dflt, "`0.5`");
}

// A shipped recipe read by its own command's reader: every key read is in
// the reference.  Catches a reader branch that the reference's recipes miss
// but a real recipe takes.
TEST(RecipeReference, ShippedRecipesHoldOnlyListedKeys) {
  std::map<std::string, std::set<std::string>> listed;
  for (const auto& d : recipe_key_docs()) listed[d.group].insert(d.key);
  int recipes = 0;
  for (const auto& e : fs::directory_iterator(fs::path(ZR_SOURCE_DIR) / "recipes")) {
    if (e.path().extension() != ".yaml") continue;
    // A recipe may leave a path to the command line (r1zero-hf-moe.yaml:
    // policy.init, data.path): give it one that exists and read again.
    std::vector<std::string> overrides;
    std::vector<RecipeKeyRead> reads;
    bool pretrain = false;
    for (bool done = false; !done;) {
      Recipe r = Recipe::from_file(e.path().string());
      r.apply_overrides(overrides);
      pretrain = r.root().has("pretrain");
      RecipeKeyLog log;
      try {
        if (pretrain)
          read_pretrain_recipe(r);
        else
          read_train_recipe(r);
        CommConfig::from(r.root());
        done = true;
      } catch (const Error& err) {
        // "...: missing required key 'data.path'" or "...: data.path: file
        // '/path/to/train.jsonl' does not exist" (a placeholder to replace)
        const std::string what = err.what(), missing = "missing required key '";
        std::string key;
        if (size_t at = what.find(missing); at != std::string::npos) {
          key = what.substr(at + missing.size());
          key.resize(key.find('\''));
        } else if (size_t at = what.find(": file '"); at != std::string::npos) {
          key = what.substr(0, at);
          key = key.substr(key.rfind(": ") + 2);
        }
        ASSERT_TRUE(!key.empty() && overrides.size() < 4) << what;
        overrides.push_back(key + "=/dev/null");
      }
      reads = log.reads();
    }
    ++recipes;
    const std::string group = pretrain ? "pretrain" : "train";
    for (const auto& k : reads)
      EXPECT_TRUE(listed[group].count(recipe_doc_key(k.path)))
          << e.path().filename() << ": " << k.path << " is not in the " << group << " reference";
  }
  EXPECT_GE(recipes, 4);
}

}  // namespace
}  // namespace zerorl
