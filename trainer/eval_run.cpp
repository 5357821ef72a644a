#include "trainer/eval_run.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <filesystem>
#include <fstream>

#include "core/comm.h"
#include "core/config.h"
#include "core/h5.h"
#include "core/log.h"
#include "core/recipe_path.h"
#include "data/dataset.h"
#include "data/template.h"
#include "model/model.h"
#include "rewards/pipeline.h"
#include "rollout/engine.h"
#include "rollout/prompt_input.h"
#include "trainer/checkpoint.h"
#include "trainer/policy_file.h"
#include "trainer/run_dir.h"
#include "trainer/train_recipe.h"

namespace zerorl {
namespace {

namespace fs = std::filesystem;

// A checkpoint step folder, one of its rank files, or neither ("").
std::string checkpoint_step_of(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return fs::exists(fs::path(path) / "rank_0.h5", ec) ? path : "";
  }
  if (!fs::is_regular_file(path, ec)) return "";
  const std::string name = fs::path(path).filename().string();
  if (name.rfind("rank_", 0) != 0) return "";
  H5File f(path, H5File::Mode::kRead);
  if (!f.exists("meta")) return "";
  return fs::path(path).parent_path().string();
}

// A training checkpoint file (its root carries the format tag), under any
// name and in any folder.
bool is_checkpoint_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  try {
    H5File f(path, H5File::Mode::kRead);
    return f.has_attr("", "zerorl_checkpoint_format");
  } catch (const Error&) {
    return false;  // not HDF5: load_policy says what it is
  }
}

// The weights of a checkpoint rank file into the policy, as a resume loads them.
// From a step folder (put together from its rank files: an expert-parallel
// checkpoint's experts are row shards of several), or from one file.
void load_checkpoint_weights(model::CausalLM& model, const std::string& step_dir,
                             const std::string& file) {
  NamedTensors w;
  if (!step_dir.empty()) {
    w = load_checkpoint_group(step_dir, "model");
  } else {
    ZR_CHECK(!checkpoint_has_row_shards(file), file,
             ": a rank file of an expert-parallel checkpoint holds only some of the experts; "
             "give --ckpt its step folder");
    w = load_checkpoint(file).weights;
  }
  torch::NoGradGuard g;
  std::map<std::string, at::Tensor> saved(w.begin(), w.end());
  for (auto& [n, t] : model.named_weights()) {
    auto it = saved.find(n);
    ZR_CHECK(it != saved.end(), file, ": weight '", n,
             "' missing (a checkpoint of another model than policy.init?)");
    ZR_CHECK(it->second.sizes() == t.sizes(), file, ": weight '", n, "' has shape ",
             it->second.sizes(), ", policy.init's has ", t.sizes());
    t.copy_(it->second);
  }
}

}  // namespace

EvalRunResult run_eval(Recipe& recipe, Comm& comm, const std::string& ckpt) {
  // The recipe, read as a training run reads it (the training-only sections
  // are validated too, so a recipe `zerorl eval` accepts also trains).
  TrainRecipe cfg = read_train_recipe(recipe);
  log::set_level(log::level_from_string(cfg.log.level));
  const std::string run_path = cfg.run.path();
  const std::string& init = cfg.policy.init;
  ZR_CHECK(!cfg.policy.on_cuda || at::hasCUDA(), recipe.section("policy").where("device"),
           ": policy.device is cuda but this process sees no CUDA device");
  const at::Device device = cfg.policy.on_cuda ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  const auto tmpl = data::PromptTemplate::from_config(cfg.prompt_template);
  const EvalConfig& eval = cfg.eval;

  const auto test_set = data::load_examples(cfg.data, data::Split::kTest);
  ZR_CHECK(!test_set.empty(), recipe.section("data").where(),
           ": the recipe's data has no test split to evaluate on");

  // Which policy.
  EvalRunResult out;
  std::string step_dir;
  std::string ckpt_file;  // the rank file whose weights are evaluated
  std::string policy_path = init;
  if (ckpt == "auto") {
    ResumePoint rp = find_resume_checkpoint(run_path + "/checkpoints", comm);
    ZR_CHECK(rp.found(), "--ckpt auto: no usable checkpoint under ", run_path, "/checkpoints");
    step_dir = rp.path;
  } else if (!ckpt.empty()) {
    ZR_CHECK(fs::exists(ckpt), "--ckpt ", ckpt, ": no such file or folder");
    // Verified before anything is read from it, as generate and export do:
    // a checkpoint file under any name first, its step folder (every rank
    // file present, intact and agreeing) below.
    const std::string why = verify_if_checkpoint(ckpt);
    ZR_CHECK(why.empty(), "--ckpt ", ckpt, ": the checkpoint fails verification (", why,
             "); refusing to evaluate it");
    step_dir = checkpoint_step_of(ckpt);
    if (step_dir.empty() && is_checkpoint_file(ckpt)) ckpt_file = ckpt;  // a copy, renamed
    if (step_dir.empty() && ckpt_file.empty()) policy_path = ckpt;
  }
  if (!step_dir.empty()) {
    const std::string why = verify_checkpoint_step(step_dir);
    ZR_CHECK(why.empty(), "--ckpt ", ckpt, ": the checkpoint fails verification (", why,
             "); refusing to evaluate it");
    ckpt_file = checkpoint_rank_file(step_dir, 0);
  }
  Policy policy = load_policy(policy_path);
  auto& model = *policy.model;
  rollout::check_prompts_fit(test_set, tmpl, *policy.tokenizer, cfg.policy.prepend_bos,
                             model.config().max_position, eval.sampling.max_new_tokens, "test");
  cast_parameters(model, cfg.policy.dtype, "policy " + policy_path);
  model.to(device);
  out.policy = policy_path;
  if (!ckpt_file.empty()) {
    load_checkpoint_weights(model, step_dir, ckpt_file);
    out.policy = step_dir.empty() ? ckpt_file : step_dir;
    out.step = inspect_checkpoint(ckpt_file).step;
  }
  ZR_LOG_INFO("evaluating ", out.policy, " (step ", out.step, ") on ",
              eval.num_problems > 0 ? std::min<long>(eval.num_problems, test_set.size())
                                    : static_cast<long>(test_set.size()),
              " test problems");

  auto text =
      std::make_shared<rollout::TokenText>(rollout::TokenText::from_tokenizer(*policy.tokenizer));
  rollout::EngineOptions eo = rollout::engine_options(cfg.rollout);
  if (policy.tokenizer->eos_id() >= 0) eo.eos(policy.tokenizer->eos_id());
  rollout::Engine engine(eo, text);

  EvalContext ctx;
  ctx.policy = &model;
  ctx.tokenizer = policy.tokenizer.get();
  ctx.prompt_template = &tmpl;
  ctx.rewards = &cfg.rewards;
  ctx.engine = &engine;
  ctx.prepend_bos = cfg.policy.prepend_bos;
  out.eval = evaluate(ctx, test_set, eval, comm);
  return out;
}

}  // namespace zerorl
