// Which recipe keys the readers read, as they read them: while a
// RecipeKeyLog is alive on a thread, every ConfigNode read on that thread
// (get, choice, raw) is recorded with the key's dotted path, its type and
// its default.  The recipe reference (`zerorl train --list-keys`,
// docs/RECIPES.md; trainer/recipe_reference.h) is built from these records,
// so it lists what the code reads, not what someone remembered to write.
//
// Kept out of core/config.h on purpose (that header is included nearly
// everywhere); core/config.cpp calls log_recipe_key_read().  One log per
// thread at a time; recipes are read on one thread at start-up.
#pragma once

#include <string>
#include <vector>

namespace zerorl {

struct RecipeKeyRead {
  std::string path;          // dotted: "train.steps"
  std::string type;          // "integer", "one of grpo, dapo", "free-form", ...
  std::string default_text;  // the default as flow-style YAML; "" when required
  bool required = false;
  std::string context;  // RecipeKeyLog::set_context() at the time of the read
};

class RecipeKeyLog {
 public:
  RecipeKeyLog();  // starts recording this thread's reads (one log at a time)
  ~RecipeKeyLog();
  RecipeKeyLog(const RecipeKeyLog&) = delete;
  RecipeKeyLog& operator=(const RecipeKeyLog&) = delete;

  // A label stored with every later read (which variant recipe is read).
  void set_context(std::string context) { context_ = std::move(context); }

  // Every read in order, repeats included (a choice() is also a string get()).
  const std::vector<RecipeKeyRead>& reads() const { return reads_; }

 private:
  friend void log_recipe_key_read(RecipeKeyRead r);
  std::vector<RecipeKeyRead> reads_;
  std::string context_;
};

// True while a RecipeKeyLog is alive on this thread (so callers build the
// record only then).
bool recipe_key_log_active();
// Called by ConfigNode (core/config.cpp) on every read; a no-op unless a
// RecipeKeyLog is alive on this thread.
void log_recipe_key_read(RecipeKeyRead r);

}  // namespace zerorl
