#include "trainer/disaggregated.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "core/checks.h"
#include "core/comm.h"
#include "core/config.h"
#include "core/process_grid.h"
#include "model/moe_ep.h"

namespace zerorl {

DisaggregatedConfig DisaggregatedConfig::from(const ConfigNode& rollout,
                                              const ParallelConfig& parallel) {
  DisaggregatedConfig c;
  c.on = rollout.choice("mode", {"colocated", "disaggregated"}, "colocated") == "disaggregated";
  c.where_mode = rollout.where("mode");
  c.max_staleness = rollout.get<long>("max_staleness", c.max_staleness);
  ZR_CHECK(c.max_staleness >= 0, rollout.where("max_staleness"),
           ": rollout.max_staleness must be >= 0 (weight versions a batch may lag), got ",
           c.max_staleness);
  c.rollout_ranks = parallel.rollout_ranks;  // read (and checked >= 0) by ParallelConfig
  c.where_ranks = parallel.where_rollout_ranks;
  ZR_CHECK(!c.on || c.rollout_ranks >= 1, c.where_ranks,
           ": rollout.mode disaggregated needs parallel.rollout_ranks >= 1 (ranks that only "
           "generate)");
  ZR_CHECK(c.on || c.rollout_ranks == 0, c.where_ranks,
           ": parallel.rollout_ranks = ", c.rollout_ranks, " needs rollout.mode: disaggregated (",
           c.where_mode, "); colocated ranks all roll out and learn");
  ZR_CHECK(c.on || c.max_staleness == 0, rollout.where("max_staleness"),
           ": rollout.max_staleness needs rollout.mode: disaggregated (colocated is synchronous)");
  return c;
}

// ---- roles ---------------------------------------------------------------------------

Roles::Roles(Comm& world, int rollout_ranks, int expert)
    : world_(&world), rollouts_(rollout_ranks), expert_(expert) {
  learners_ = world.size() - rollouts_;
  ZR_CHECK(learners_ >= 1, "parallel.rollout_ranks = ", rollouts_, " leaves no learner among ",
           world.size(), " ranks");
  ZR_CHECK(expert_ >= 1 && learners_ % expert_ == 0 && rollouts_ % expert_ == 0,
           "parallel.expert = ", expert_, " must divide both roles: ", learners_, " learners and ",
           rollouts_, " rollout ranks");
  learner_ = world.rank() < learners_;
  role_ = world.split(learner_ ? 0 : 1, world.rank());
  // A role of one rank needs no communication: its collectives are the
  // identity on any device (a lone learner's CUDA gradients, metrics, and
  // checkpoints never meet the CPU-only MPI Comm).
  if (role_->size() == 1) role_ = make_comm("single");
  // Colour j < E: learner j and the rollout ranks at EP rank j (the learner
  // first, by world rank); colour E: the learners of DP rank > 0.
  const int r = world.rank();
  weights_root_ = learner_ && r < expert_;
  const int colour = learner_ ? (r < expert_ ? r : expert_) : (r - learners_) % expert_;
  weights_ = world.split(colour, r);
}

std::pair<int64_t, int64_t> Roles::learner_places(int l, int64_t n) const {
  const int64_t per = n / learners_;
  return {l * per, (l + 1) * per};
}

std::pair<int64_t, int64_t> Roles::rollout_places(int r, int64_t n) const {
  const int64_t per = n / rollouts_;
  return {r * per, (r + 1) * per};
}

int Roles::rollout_index() const {
  ZR_CHECK(!learner_, "rollout_index on a learner");
  return world_->rank() - learners_;
}

// ---- weight broadcast ------------------------------------------------------------------

WeightBroadcast::WeightBroadcast(std::vector<std::pair<std::string, at::Tensor>> weights,
                                 double bucket_mb, const ProcessGrid* grid)
    : weights_(std::move(weights)), grid_(grid && grid->ep() > 1 ? grid : nullptr) {
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * (1 << 20)));
  int64_t bytes = 0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    const at::Tensor& t = weights_[i].second;
    ZR_CHECK(t.is_contiguous(), "weight broadcast: '", weights_[i].first,
             "' must be a contiguous tensor");
    const at::Tensor* head =
        buckets_.empty() ? nullptr : &weights_[buckets_.back().members.front()].second;
    const bool fresh = !head || bytes >= cap || head->scalar_type() != t.scalar_type() ||
                       head->device() != t.device();
    if (fresh) {
      buckets_.push_back({});
      bytes = 0;
    }
    buckets_.back().members.push_back(i);
    bytes += static_cast<int64_t>(t.nbytes());
  }
}

int64_t WeightBroadcast::bytes() const {
  int64_t n = 0;
  for (const auto& [name, t] : weights_) n += static_cast<int64_t>(t.nbytes());
  return n;
}

double WeightBroadcast::run(Comm& c) {
  const auto t0 = std::chrono::steady_clock::now();
  at::NoGradGuard g;
  const bool root = c.rank() == 0;
  // The bucket lives where the Comm moves data: on the weights' device for
  // nccl, else in host memory (pinned when the weights are on a GPU, so the
  // copies in and out are DMA).  One path for every device.
  const bool native = c.backend() == "nccl" || c.backend() == "single";
  for (auto& b : buckets_) {
    if (!b.flat.defined()) {  // once, at the first broadcast (learners other than 0 never do)
      int64_t n = 0;
      for (size_t i : b.members) n += weights_[i].second.numel();
      const at::TensorOptions w = weights_[b.members.front()].second.options();
      b.flat = native || w.device().is_cpu()
                   ? at::empty({n}, w)
                   : at::empty({n}, w.device(at::kCPU).pinned_memory(true));
    }
    int64_t off = 0;
    if (root)
      for (size_t i : b.members) {
        const at::Tensor& t = weights_[i].second;
        b.flat.narrow(0, off, t.numel()).copy_(t.reshape({-1}));
        off += t.numel();
      }
    c.broadcast(b.flat, 0);
    if (root) continue;
    off = 0;
    for (size_t i : b.members) {
      at::Tensor& t = weights_[i].second;
      t.view({-1}).copy_(b.flat.narrow(0, off, t.numel()));  // in place: t keeps its storage
      off += t.numel();
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double WeightBroadcast::fingerprint() const {
  at::NoGradGuard g;
  double fp = 0, shard = 0;
  for (size_t i = 0; i < weights_.size(); ++i) {
    const double v =
        static_cast<double>(i + 1) * weights_[i].second.to(at::kDouble).sum().item<double>();
    (grid_ && model::is_sharded_expert(weights_[i].first) ? shard : fp) += v;
  }
  if (!grid_) return fp;
  // Each EP rank's shard sum in its own slot: the all-reduce adds zeros to
  // it, exactly, and the slots are summed in EP-rank order, weighted by the
  // rank (shards swapped between EP ranks change the sum).
  at::Tensor slots = at::zeros({grid_->ep()}, at::kDouble);
  slots[grid_->ep_rank()] = shard;
  grid_->ep_comm().allreduce(slots);
  for (int64_t e = 0; e < grid_->ep(); ++e)
    fp += static_cast<double>(e + 1) * slots[e].item<double>();
  return fp;
}

// ---- wire ------------------------------------------------------------------------------

namespace {

using nlohmann::json;

json sample_json(const rollout::RolloutSample& s) {
  return {{"prompt_id", s.prompt_id},
          {"sample_index", s.sample_index},
          {"prompt_tokens", s.prompt_tokens},
          {"completion_tokens", s.completion_tokens},
          {"logp", s.logp},
          {"finish", static_cast<int>(s.finish)},
          {"text", s.text},
          {"routing", s.routing}};
}

rollout::RolloutSample sample_from(const json& j) {
  rollout::RolloutSample s;
  s.prompt_id = j.at("prompt_id").get<int64_t>();
  s.sample_index = j.at("sample_index").get<int64_t>();
  s.prompt_tokens = j.at("prompt_tokens").get<std::vector<int64_t>>();
  s.completion_tokens = j.at("completion_tokens").get<std::vector<int64_t>>();
  s.logp = j.at("logp").get<std::vector<double>>();
  s.finish = static_cast<rollout::FinishReason>(j.at("finish").get<int>());
  s.text = j.at("text").get<std::string>();
  s.routing = j.at("routing").get<std::vector<std::vector<int32_t>>>();
  return s;
}

json score_json(const rewards::ScoredSample& s) {
  std::vector<int> failed(s.failed.begin(), s.failed.end());
  return {{"total", s.total},          {"values", s.values},   {"errors", s.errors},
          {"failed", failed},          {"answers", s.answers}, {"reasons", s.reasons},
          {"components", s.components}};
}

rewards::ScoredSample score_from(const json& j) {
  rewards::ScoredSample s;
  s.total = j.at("total").get<double>();
  s.values = j.at("values").get<std::vector<double>>();
  s.errors = j.at("errors").get<std::vector<std::string>>();
  for (int f : j.at("failed").get<std::vector<int>>()) s.failed.push_back(static_cast<char>(f));
  s.answers = j.at("answers").get<std::vector<std::string>>();
  s.reasons = j.at("reasons").get<std::vector<std::string>>();
  s.components = j.at("components").get<std::map<std::string, double>>();
  return s;
}

json stats_json(const rollout::RolloutStats& s) {
  return {s.num_samples,      s.num_slots,    s.num_prefills,    s.prefill_tokens, s.decode_tokens,
          s.generated_tokens, s.decode_steps, s.prefill_seconds, s.decode_seconds, s.total_seconds};
}

rollout::RolloutStats stats_from(const json& j) {
  rollout::RolloutStats s;
  s.num_samples = j.at(0).get<int64_t>();
  s.num_slots = j.at(1).get<int64_t>();
  s.num_prefills = j.at(2).get<int64_t>();
  s.prefill_tokens = j.at(3).get<int64_t>();
  s.decode_tokens = j.at(4).get<int64_t>();
  s.generated_tokens = j.at(5).get<int64_t>();
  s.decode_steps = j.at(6).get<int64_t>();
  s.prefill_seconds = j.at(7).get<double>();
  s.decode_seconds = j.at(8).get<double>();
  s.total_seconds = j.at(9).get<double>();
  return s;
}

}  // namespace

at::Tensor GroupsMessage::to_bytes() const {
  json j;
  j["step"] = step;
  j["round"] = round;
  j["last_round"] = last_round;
  j["kept"] = kept;
  j["version"] = version;
  j["fingerprint"] = fingerprint;
  j["places"] = places;
  j["batch_places"] = batch_places;
  j["group_size"] = rollout.group_size;
  j["samples"] = json::array();
  for (const auto& s : rollout.samples) j["samples"].push_back(sample_json(s));
  j["scores"] = json::array();
  for (const auto& s : scores) j["scores"].push_back(score_json(s));
  j["rewards"] = rewards;
  j["carries_stats"] = carries_stats;
  j["stats"] = stats_json(rollout.stats);
  j["seconds"] = {generate_seconds, reward_seconds, wait_seconds};
  const std::vector<uint8_t> bytes = json::to_cbor(j);
  at::Tensor t = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  std::copy(bytes.begin(), bytes.end(), t.data_ptr<uint8_t>());
  return t;
}

GroupsMessage GroupsMessage::from_bytes(const at::Tensor& bytes) {
  const uint8_t* p = bytes.data_ptr<uint8_t>();
  const json j = json::from_cbor(p, p + bytes.numel());
  GroupsMessage m;
  m.step = j.at("step").get<int64_t>();
  m.round = j.at("round").get<int64_t>();
  m.last_round = j.at("last_round").get<bool>();
  m.kept = j.at("kept").get<int64_t>();
  m.version = j.at("version").get<int64_t>();
  m.fingerprint = j.at("fingerprint").get<double>();
  m.places = j.at("places").get<std::vector<int64_t>>();
  m.batch_places = j.at("batch_places").get<std::vector<int64_t>>();
  m.rollout.group_size = j.at("group_size").get<int64_t>();
  for (const auto& s : j.at("samples")) m.rollout.samples.push_back(sample_from(s));
  for (const auto& s : j.at("scores")) m.scores.push_back(score_from(s));
  m.rewards = j.at("rewards").get<std::vector<double>>();
  m.carries_stats = j.at("carries_stats").get<bool>();
  m.rollout.stats = stats_from(j.at("stats"));
  m.generate_seconds = j.at("seconds").at(0).get<double>();
  m.reward_seconds = j.at("seconds").at(1).get<double>();
  m.wait_seconds = j.at("seconds").at(2).get<double>();
  const size_t n = m.rollout.samples.size(), groups = m.places.size();
  ZR_CHECK(m.scores.size() == n && m.rewards.size() == n && m.batch_places.size() == groups &&
               static_cast<int64_t>(groups) * m.rollout.group_size == static_cast<int64_t>(n),
           "groups message of step ", m.step + 1, ": ", n, " samples, ", m.scores.size(),
           " scores, ", m.rewards.size(), " rewards, ", groups, " places, ", m.batch_places.size(),
           " batch places");
  return m;
}

}  // namespace zerorl
