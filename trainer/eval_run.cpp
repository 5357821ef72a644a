#include "trainer/eval_run.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <filesystem>
#include <fstream>

#include "core/comm.h"
#include "core/comm_config.h"
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
void load_checkpoint_weights(model::CausalLM& model, const std::string& file) {
  Checkpoint c = load_checkpoint(file);
  torch::NoGradGuard g;
  std::map<std::string, at::Tensor> saved(c.weights.begin(), c.weights.end());
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
  // The recipe, read as setup() in grpo_trainer.cpp reads it.
  auto rn = recipe.section("run");
  const std::string run_path =
      run_dir_path(rn.get<std::string>("dir", "runs"), rn.get<std::string>("name"));
  auto pol = recipe.section("policy");
  const std::string init = resolve_recipe_path(pol, "init", pol.get<std::string>("init"));
  const bool prepend_bos = pol.get<bool>("prepend_bos", false);
  const at::ScalarType dtype = policy_dtype_from(pol);
  const bool on_cuda = pol.choice("device", {"cpu", "cuda"}, "cpu") == "cuda";
  ZR_CHECK(!on_cuda || at::hasCUDA(), pol.where("device"),
           ": policy.device is cuda but this process sees no CUDA device");
  const at::Device device = on_cuda ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  auto tmpl =
      data::PromptTemplate::from_config(data::TemplateConfig::from(recipe.section("template")));
  auto data_cfg = data::DatasetConfig::from(recipe.section("data"));
  auto ro = recipe.section("rollout");
  const long num_slots = ro.get<long>("num_slots", 64);
  const auto sampling = rollout::SamplingParams::from_config(ro.section("sampling"));
  const int reward_threads = static_cast<int>(recipe.root().get<long>("reward_threads", 0));
  auto pipeline = rewards::build_reward_pipeline(recipe.section("rewards"), reward_threads);
  EvalConfig eval = EvalConfig::from(recipe.section("eval"));
  CommConfig::from(recipe.root());  // the command made the Comm from it
  log::set_level(log::level_from_string(recipe.section("log").get<std::string>("level", "info")));
  for (const char* training_only :
       {"train", "advantage", "loss", "optimizer", "checkpoint", "logging"})
    recipe.root().mark_read(training_only);
  recipe.check_all_read();

  const auto test_set = data::load_examples(data_cfg, data::Split::kTest);
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
  rollout::check_prompts_fit(
      test_set, tmpl, *policy.tokenizer, prepend_bos, model.config().max_position,
      eval.max_new_tokens > 0 ? eval.max_new_tokens : sampling.max_new_tokens, "test");
  cast_parameters(model, dtype, "policy " + policy_path);
  model.to(device);
  out.policy = policy_path;
  if (!ckpt_file.empty()) {
    load_checkpoint_weights(model, ckpt_file);
    out.policy = step_dir.empty() ? ckpt_file : step_dir;
    out.step = inspect_checkpoint(ckpt_file).step;
  }
  ZR_LOG_INFO("evaluating ", out.policy, " (step ", out.step, ") on ",
              eval.num_problems > 0 ? std::min<long>(eval.num_problems, test_set.size())
                                    : static_cast<long>(test_set.size()),
              " test problems");

  auto text =
      std::make_shared<rollout::TokenText>(rollout::TokenText::from_tokenizer(*policy.tokenizer));
  rollout::EngineOptions eo;
  eo.slots(num_slots);
  if (policy.tokenizer->eos_id() >= 0) eo.eos(policy.tokenizer->eos_id());
  rollout::Engine engine(eo, text);

  EvalContext ctx;
  ctx.policy = &model;
  ctx.tokenizer = policy.tokenizer.get();
  ctx.prompt_template = &tmpl;
  ctx.rewards = &pipeline;
  ctx.engine = &engine;
  ctx.sampling = sampling;
  ctx.prepend_bos = prepend_bos;
  out.eval = evaluate(ctx, test_set, eval, comm);
  return out;
}

}  // namespace zerorl
