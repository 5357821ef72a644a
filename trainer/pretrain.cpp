#include "trainer/pretrain.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/collective_timeout.h"
#include "core/comm.h"
#include "core/config.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/char_tokenizer.h"
#include "data/corpus.h"
#include "model/model.h"
#include "trainer/optimizer.h"
#include "trainer/policy_step.h"
#include "trainer/policy_file.h"
#include "trainer/run_dir.h"

namespace zerorl {

namespace {

// Packs documents 0, 1, 2, ... (each + <eos>) into rows of row_len tokens.
class Packer {
 public:
  Packer(const data::CorpusGenerator& corpus, const data::Tokenizer& tok, int64_t row_len)
      : corpus_(corpus), tok_(tok), row_len_(row_len) {}

  // The next `rows` rows as int64 [rows, row_len].
  at::Tensor next(int64_t rows) {
    at::Tensor out = at::empty({rows, row_len_}, at::kLong);
    int64_t* dst = out.data_ptr<int64_t>();
    for (int64_t i = 0; i < rows * row_len_; ++i) {
      while (pos_ >= buf_.size()) refill();
      dst[i] = buf_[pos_++];
    }
    return out;
  }
  uint64_t documents_read() const { return next_doc_; }

 private:
  void refill() {
    buf_.clear();
    pos_ = 0;
    for (auto& d : corpus_.documents(next_doc_, 64)) {
      auto ids = tok_.encode(d.text);
      buf_.insert(buf_.end(), ids.begin(), ids.end());
      buf_.push_back(tok_.eos_id());
    }
    next_doc_ += 64;
  }
  const data::CorpusGenerator& corpus_;
  const data::Tokenizer& tok_;
  int64_t row_len_;
  std::vector<int32_t> buf_;
  size_t pos_ = 0;
  uint64_t next_doc_ = 0;
};

}  // namespace

PretrainRecipe read_pretrain_recipe(Recipe& recipe) {
  PretrainRecipe c;
  c.run = RunConfig::from(recipe.section("run"));
  c.corpus = data::CorpusConfig::from(recipe.section("corpus"));
  c.tokenizer = std::make_shared<data::CharTokenizer>(data::CharTokenizer::for_tasks());
  auto model_node = recipe.section("model");
  if (!model_node.has("vocab_size")) model_node.get<long>("vocab_size", c.tokenizer->vocab_size());
  c.model = model::ModelConfig::from(model_node);
  ZR_CHECK(c.model.vocab_size >= c.tokenizer->vocab_size(), model_node.where("vocab_size"),
           ": model.vocab_size ", c.model.vocab_size, " is smaller than the tokenizer's ",
           c.tokenizer->vocab_size());
  auto pt = recipe.section("pretrain");
  c.steps = pt.get<long>("steps");
  c.batch_size = pt.get<long>("batch_size");
  c.seq_len = pt.get<long>("seq_len");
  c.log_every = pt.get<long>("log_every", c.log_every);
  c.output = pt.get<std::string>("output", c.output);
  c.on_cuda = pt.choice("device", {"cpu", "cuda"}, "cpu") == "cuda";
  c.dtype = pt.choice("dtype", {"fp32", "bf16"}, "fp32") == "bf16" ? at::kBFloat16 : at::kFloat;
  c.optimizer = OptimizerConfig::from(pt.section("optimizer"));
  ZR_CHECK(c.steps > 0 && c.seq_len > 1, pt.where(),
           ": pretrain.steps and seq_len must be > 0 / > 1");
  ZR_CHECK(c.batch_size > 0, pt.where("batch_size"), ": pretrain.batch_size must be > 0, got ",
           c.batch_size);
  ZR_CHECK(c.seq_len + 1 <= c.model.max_position, pt.where("seq_len"), ": seq_len ", c.seq_len,
           " exceeds model.max_position_embeddings");
  recipe.check_all_read();
  return c;
}

PretrainResult run_pretrain(Recipe& recipe, Comm& comm) {
  auto t_start = std::chrono::steady_clock::now();
  // ---- configuration (all of it read before any compute) ----
  const PretrainRecipe cfg = read_pretrain_recipe(recipe);
  const std::string& run_name = cfg.run.name;
  const std::string& run_root = cfg.run.dir;
  const auto& corpus_cfg = cfg.corpus;
  const auto& tok = cfg.tokenizer;
  const model::ModelConfig& model_cfg = cfg.model;
  const long steps = cfg.steps, batch = cfg.batch_size, seq_len = cfg.seq_len;
  const long log_every = cfg.log_every;
  const std::string& output = cfg.output;
  const OptimizerConfig& opt_cfg = cfg.optimizer;
  ZR_CHECK(batch % comm.size() == 0, recipe.section("pretrain").where("batch_size"),
           ": pretrain.batch_size ", batch, " must be a positive multiple of the ", comm.size(),
           " ranks");

  ZR_CHECK(!cfg.on_cuda || at::hasCUDA(), recipe.section("pretrain").where("device"),
           ": pretrain.device is cuda but this process sees no CUDA device");
  const at::Device device = cfg.on_cuda ? at::Device(at::kCUDA) : at::Device(at::kCPU);

  std::unique_ptr<RunDir> dir;
  std::string run_path = run_dir_path(run_root, run_name);
  if (comm.rank() == 0)
    dir = std::make_unique<RunDir>(run_root, run_name, recipe.dump(), RunDir::Mode::kFresh);
  comm.barrier();
  std::string out_path =
      std::filesystem::path(output).is_absolute() ? output : run_path + "/" + output;

  // ---- model, optimizer, data ----
  at::manual_seed(static_cast<uint64_t>(model_cfg.seed));
  auto model = std::make_shared<model::CausalLM>(model_cfg);
  // Initialised in fp32 on the CPU whatever the device and dtype, so a
  // seed gives the same starting weights everywhere.
  cast_parameters(*model, cfg.dtype, "");
  model->to(device);
  ZR_LOG_INFO("pretraining ", model_cfg.summary(), "; ", model->param_report().to_string(), "; ",
              dtype_name(cfg.dtype), " on ", device.str());
  std::vector<NamedParam> params;
  for (auto& p : model->named_parameters(true)) {
    bool decay = p.value().dim() >= 2;  // no decay on norms and biases
    params.push_back({p.key(), p.value(), decay});
  }
  Optimizer opt(params, opt_cfg, comm);
  data::CorpusGenerator corpus(corpus_cfg);
  Packer packer(corpus, *tok, seq_len + 1);
  const long rows_per_rank = batch / comm.size();

  Progress progress("pretrain", steps);
  PretrainResult result;
  for (long step = 0; step < steps; ++step) {
    set_collective_context("pretrain step " + std::to_string(step + 1));
    auto t0 = std::chrono::steady_clock::now();
    // Every rank packs the same global batch and takes its rows.
    at::Tensor rows = packer.next(batch).narrow(0, comm.rank() * rows_per_rank, rows_per_rank);
    at::Tensor tokens = rows.narrow(1, 0, seq_len).contiguous().to(device);
    at::Tensor targets = rows.narrow(1, 1, seq_len).contiguous().to(device);
    model::ForwardOptions fo;
    fo.record_expert_load = model_cfg.moe.balance_bias_gamma > 0;
    auto out = model->logprobs(tokens, targets, {}, fo);
    const double global_tokens = static_cast<double>(batch) * seq_len;
    at::Tensor loss = -out.logp_BT.sum() / global_tokens;
    if (out.aux_loss.defined()) loss = loss + out.aux_loss / comm.size();
    double local_loss = loss.item<double>();
    opt.overlap_next_backward();
    loss.backward();
    const StepReport rep = policy_step(opt, *model, comm, std::isfinite(local_loss)).optimizer;
    double nll = comm.allreduce_scalar(local_loss);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    result.final_loss = nll;
    progress.update(step + 1, {{"nll", nll}, {"lr", rep.lr}});
    if (dir && ((step + 1) % log_every == 0 || step + 1 == steps)) {
      dir->append_metrics(step + 1,
                          {{"pretrain/nll", nll},
                           {"pretrain/lr", rep.lr},
                           {"pretrain/grad_norm", rep.grad_norm},
                           {"pretrain/skipped", static_cast<double>(rep.num_skipped)},
                           {"pretrain/documents", static_cast<double>(packer.documents_read())}},
                          {{"step", secs}});
    }
  }
  progress.finish();
  if (comm.rank() == 0) save_policy(out_path, *model, *tok);
  comm.barrier();
  result.policy_path = out_path;
  result.steps = steps;
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  ZR_LOG_INFO("pretraining done: nll ", result.final_loss, " in ", result.wall_seconds,
              " s; policy written to ", out_path);
  return result;
}

}  // namespace zerorl
