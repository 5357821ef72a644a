#include "rollout/engine.h"

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <unordered_set>

#include "core/comm.h"
#include "core/error.h"
#include "core/process_grid.h"
#include "core/rng.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace zerorl::rollout {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStopString:
      return "stop";
    case FinishReason::kEndOfText:
      return "eos";
    case FinishReason::kLength:
      return "length";
  }
  return "?";
}

std::string RolloutStats::to_string() const {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "samples %lld, prefill %lld tok in %.3fs (%.0f tok/s, %lld prefills), decode %lld "
                "tok in %.3fs "
                "(%.0f tok/s, %lld steps, occupancy %.2f of %lld slots), total %.3fs",
                static_cast<long long>(num_samples), static_cast<long long>(prefill_tokens),
                prefill_seconds, prefill_tokens_per_s(), static_cast<long long>(num_prefills),
                static_cast<long long>(decode_tokens), decode_seconds, decode_tokens_per_s(),
                static_cast<long long>(decode_steps), occupancy(),
                static_cast<long long>(num_slots), total_seconds);
  return buf;
}

Engine::Engine(EngineOptions options, std::shared_ptr<const TokenText> text)
    : options_(std::move(options)), text_(std::move(text)) {
  ZR_CHECK(options_.num_slots >= 1, "rollout engine: num_slots must be >= 1, got ",
           options_.num_slots);
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Per-sample generation state beside its RolloutSample.
struct SeqState {
  Rng rng;
  std::string bytes;  // completion text so far (raw bytes)
  int64_t slot = -1;
  bool done = false;
};

// One generate() call.  Kept as a class so the admission policy, the decode
// step and the finishing rules each read as one short function.
class Run {
 public:
  Run(const EngineOptions& opt, const TokenText* text, model::CausalLM& policy,
      const std::vector<PromptInput>& prompts, int64_t G, const SamplingParams& params)
      : text_(text),
        record_routing_(opt.record_routing),
        policy_(policy),
        prompts_(prompts),
        G_(G),
        params_(params),
        stops_(params.stop_strings) {
    if (const ProcessGrid* grid = policy.expert_grid(); grid && grid->ep() > 1)
      lockstep_ = &grid->ep_comm();
    const auto& cfg = policy.config();
    V_ = cfg.vocab_size;
    // The options' id (-1: none at all), plus every end-of-text id of the
    // model (generation_config.json may list several, e.g. Llama-3-Instruct).
    const int64_t eos = opt.eos_token_id.value_or(cfg.eos_token_id);
    if (eos >= 0) {
      stop_ids_.insert(eos);
      stop_ids_.insert(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end());
    }
    for (int64_t id : params.stop_token_ids) stop_ids_.insert(id);

    const int64_t P = static_cast<int64_t>(prompts.size());
    int64_t longest = 0;
    std::unordered_set<int64_t> ids;
    for (int64_t p = 0; p < P; ++p) {
      const PromptInput& pr = prompts[static_cast<size_t>(p)];
      ZR_CHECK(!pr.tokens.empty(), "rollout: prompt ", pr.id, " (index ", p, ") has no tokens");
      ZR_CHECK(ids.insert(pr.id).second, "rollout: prompt id ", pr.id,
               " appears twice; ids seed the sampling streams and must be unique");
      for (size_t t = 0; t < pr.tokens.size(); ++t)
        ZR_CHECK(pr.tokens[t] >= 0 && pr.tokens[t] < V_, "rollout: prompt ", pr.id, " token ", t,
                 " = ", pr.tokens[t], " is outside the vocabulary [0, ", V_, ")");
      longest = std::max(longest, static_cast<int64_t>(pr.tokens.size()));
    }
    // The last sampled token is never fed back (-1).
    const int64_t need = longest + params.max_new_tokens - 1;
    ZR_CHECK(need <= cfg.max_position, "rollout: longest prompt (", longest,
             " tokens) + max_new_tokens (", params.max_new_tokens,
             ") - 1 exceeds the model's max_position ", cfg.max_position);
    max_len_ = need;

    num_slots_ = std::min<int64_t>(opt.num_slots, P * G);
    batch_.group_size = G;
    batch_.samples.resize(static_cast<size_t>(P * G));
    seqs_.resize(static_cast<size_t>(P * G));
    for (int64_t p = 0; p < P; ++p) {
      for (int64_t g = 0; g < G; ++g) {
        RolloutSample& s = sample(p, g);
        s.prompt_id = prompts[static_cast<size_t>(p)].id;
        s.sample_index = g;
        s.prompt_tokens = prompts[static_cast<size_t>(p)].tokens;
        s.completion_tokens.reserve(
            static_cast<size_t>(std::min<int64_t>(params.max_new_tokens, 4096)));
        seqs_[static_cast<size_t>(p * G + g)].rng =
            Rng(params.seed, params.step, static_cast<uint64_t>(s.prompt_id),
                static_cast<uint64_t>(g), RngPurpose::kSample);
      }
    }
    admitted_.assign(static_cast<size_t>(P), 0);
    template_logits_.resize(static_cast<size_t>(P));
    if (record_routing_) template_routing_.resize(static_cast<size_t>(P));
    batch_.stats.num_samples = P * G;
    batch_.stats.num_slots = num_slots_;
  }

  RolloutBatch run() {
    const auto t0 = Clock::now();
    if (batch_.samples.empty()) {
      join_peers_until_done();
      return std::move(batch_);
    }
    cache_ = std::make_unique<model::KvCache>(policy_.make_cache(num_slots_, max_len_));
    for (int64_t s = num_slots_ - 1; s >= 0; --s) free_.push_back(s);
    for (;;) {
      admit();
      if (running_.empty()) {
        if (held_ < 0) break;  // nothing running, nothing waiting
        release_template();    // num_slots < G: the template must decode itself
        continue;
      }
      decode_step();
    }
    join_peers_until_done();
    for (size_t i = 0; i < seqs_.size(); ++i) {
      ZR_CHECK(seqs_[i].done, "rollout: internal error, sample ", i, " did not finish");
      if (text_) batch_.samples[i].text = utf8_sanitize(seqs_[i].bytes);
    }
    batch_.stats.total_seconds = seconds_since(t0);
    return std::move(batch_);
  }

 private:
  RolloutSample& sample(int64_t p, int64_t g) {
    return batch_.samples[static_cast<size_t>(p * G_ + g)];
  }
  int64_t num_prompts() const { return static_cast<int64_t>(prompts_.size()); }

  // ---- expert parallelism: forwards in lockstep over the EP group ----
  // Every forward of an expert-parallel policy is an exchange over its EP
  // group.  Before each of its own forwards a rank votes "busy"; a rank
  // whose work is done votes "idle" and, while any peer is busy, joins that
  // peer's forward with no tokens (CausalLM::forward_idle).  So every rank
  // runs as many forwards as the busiest one, each rank's continuous
  // batching stays as it is, and the loop ends when every rank votes idle.
  // One small all-reduce per forward; nothing without a sharded policy.
  bool any_peer_busy(bool self_busy) {
    return lockstep_->allreduce_scalar(self_busy ? 1.0 : 0.0, ReduceOp::kMax) > 0.5;
  }
  void before_forward() {
    if (lockstep_) any_peer_busy(true);
  }
  void join_peers_until_done() {
    if (!lockstep_) return;
    while (any_peer_busy(false)) {
      policy_.forward_idle();
      ++batch_.stats.idle_forwards;
    }
  }

  int64_t pop_free() {
    const int64_t s = free_.back();
    free_.pop_back();
    return s;
  }

  // ---- admission: fill free slots from the front of the queue ----
  struct Copy {
    int64_t prompt, src;
    std::vector<int64_t> dsts;
  };

  void admit() {
    if (free_.empty()) return;
    const auto t0 = Clock::now();
    std::vector<int64_t> prefill_prompts, prefill_slots;
    std::vector<Copy> copies;
    std::vector<std::pair<int64_t, int64_t>> started;  // (sample index, slot) needing a first token

    // Hand out copies of a prefilled template in slot `src` for prompt p;
    // the template becomes the group's last sample once all others have slots.
    auto distribute = [&](int64_t p, int64_t src) {
      Copy c{p, src, {}};
      while (!free_.empty() && admitted_[static_cast<size_t>(p)] < G_ - 1) {
        const int64_t dst = pop_free();
        c.dsts.push_back(dst);
        started.emplace_back(p * G_ + admitted_[static_cast<size_t>(p)]++, dst);
      }
      if (!c.dsts.empty()) copies.push_back(std::move(c));
      if (admitted_[static_cast<size_t>(p)] == G_ - 1) {
        started.emplace_back(p * G_ + admitted_[static_cast<size_t>(p)]++, src);
        return true;
      }
      return false;  // still holding the template
    };

    if (held_ >= 0 && distribute(held_, held_slot_)) held_ = -1;
    while (held_ < 0 && !free_.empty() && (!reprefill_.empty() || next_prompt_ < num_prompts())) {
      int64_t p;
      if (!reprefill_.empty()) {
        p = reprefill_.front();
        reprefill_.pop_front();
      } else {
        p = next_prompt_++;
      }
      const int64_t slot = pop_free();
      prefill_prompts.push_back(p);
      prefill_slots.push_back(slot);
      if (!distribute(p, slot)) {
        held_ = p;
        held_slot_ = slot;
      }
    }

    if (!prefill_prompts.empty()) prefill(prefill_prompts, prefill_slots);
    for (const Copy& c : copies) cache_->copy_slot(c.src, c.dsts);

    // First tokens come from the prompt's prefill logits.  The template slot
    // of a held prompt stays idle until its group is fully admitted.
    for (const auto& [si, slot] : started) {
      const int64_t p = si / G_;
      const std::vector<float>& row = template_logits_[static_cast<size_t>(p)];
      SeqState& st = seqs_[static_cast<size_t>(si)];
      st.slot = slot;
      if (record_routing_)
        batch_.samples[static_cast<size_t>(si)].routing = template_routing_[static_cast<size_t>(p)];
      const SampledToken tok = draw(row.data(), si, st);
      ++batch_.stats.generated_tokens;
      if (accept(si, tok)) {
        free_.push_back(slot);
      } else {
        running_.push_back(si);
      }
    }
    for (const auto& [si, slot] : started) {
      const int64_t p = si / G_;
      if (admitted_[static_cast<size_t>(p)] == G_) {
        template_logits_[static_cast<size_t>(p)] = {};
        if (record_routing_) template_routing_[static_cast<size_t>(p)] = {};
      }
    }
    batch_.stats.prefill_seconds += seconds_since(t0);
    // A sample that finished on its first token freed its slot: fill it now.
    if (!started.empty() && !free_.empty() &&
        (held_ >= 0 || !reprefill_.empty() || next_prompt_ < num_prompts()))
      admit();
  }

  void prefill(const std::vector<int64_t>& prompt_idx, const std::vector<int64_t>& slots) {
    std::vector<std::vector<int64_t>> tokens;
    tokens.reserve(prompt_idx.size());
    for (size_t i = 0; i < prompt_idx.size(); ++i) {
      cache_->reset(slots[i]);
      tokens.push_back(prompts_[static_cast<size_t>(prompt_idx[i])].tokens);
      batch_.stats.prefill_tokens += static_cast<int64_t>(tokens.back().size());
    }
    batch_.stats.num_prefills += static_cast<int64_t>(prompt_idx.size());
    before_forward();
    const at::Tensor logits_NV =
        host_logits(policy_.prefill(*cache_, slots, tokens, forward_options()), prompt_idx.size());
    const float* base = logits_NV.data_ptr<float>();
    for (size_t i = 0; i < prompt_idx.size(); ++i)
      template_logits_[static_cast<size_t>(prompt_idx[i])].assign(base + i * V_,
                                                                  base + (i + 1) * V_);
    if (record_routing_) {
      // Rows of the routing record are the prompts' tokens in call order.
      const HostRouting r = host_routing();
      int64_t row = 0;
      for (size_t i = 0; i < prompt_idx.size(); ++i) {
        auto& dst = template_routing_[static_cast<size_t>(prompt_idx[i])];
        dst.clear();
        for (size_t t = 0; t < tokens[i].size(); ++t) dst.push_back(r.row(row++));
      }
    }
  }

  model::ForwardOptions forward_options() const {
    model::ForwardOptions fo;
    fo.record_routing = record_routing_;
    return fo;
  }

  // The policy's last routing record on the host: [N, M*K] int32.
  struct HostRouting {
    std::vector<at::Tensor> layers;  // M x int64 [N, K], CPU, contiguous
    std::vector<int32_t> row(int64_t n) const {
      std::vector<int32_t> out;
      for (const at::Tensor& l : layers) {
        const int64_t K = l.size(1);
        const int64_t* p = l.data_ptr<int64_t>() + n * K;
        out.insert(out.end(), p, p + K);
      }
      return out;
    }
  };
  HostRouting host_routing() const {
    HostRouting r;
    for (const at::Tensor& t : policy_.last_routing())
      r.layers.push_back(t.to(at::kCPU).to(at::kLong).contiguous());
    return r;
  }

  // Known limit: every decode step copies its [rows, V] fp32 logits to the
  // host (a device sync) and samples there one row at a time in fp64
  // (rollout/sampling.h says why).  At a real vocabulary (~150k ids) that is
  // ~0.6 MB per running sample per token, paid on every step; device-side
  // sampling and stop checks (issue #15, item 4) will remove it.
  at::Tensor host_logits(const at::Tensor& logits, size_t rows) const {
    ZR_CHECK(
        logits.dim() == 2 && logits.size(0) == static_cast<int64_t>(rows) && logits.size(1) == V_,
        "rollout: model returned logits of shape ", logits.sizes(), ", expected [", rows, ", ", V_,
        "]");
    return logits.to(at::kCPU, at::kFloat).contiguous();
  }

  // num_slots < G and nothing is running: the template decodes as the next
  // sample and the rest of the group is prefilled again later.
  void release_template() {
    const int64_t p = held_;
    const int64_t si = p * G_ + admitted_[static_cast<size_t>(p)]++;
    held_ = -1;
    SeqState& st = seqs_[static_cast<size_t>(si)];
    st.slot = held_slot_;
    if (record_routing_)
      batch_.samples[static_cast<size_t>(si)].routing = template_routing_[static_cast<size_t>(p)];
    const SampledToken tok = draw(template_logits_[static_cast<size_t>(p)].data(), si, st);
    ++batch_.stats.generated_tokens;
    if (accept(si, tok))
      free_.push_back(held_slot_);
    else
      running_.push_back(si);
    if (admitted_[static_cast<size_t>(p)] < G_) reprefill_.push_front(p);
  }

  // ---- one decode step over every running sample ----
  void decode_step() {
    const auto t0 = Clock::now();
    // Ascending slots: when every slot runs, the step lists 0..S-1 in order,
    // the layout a model can serve without gathering its cache.
    std::sort(running_.begin(), running_.end(), [this](int64_t a, int64_t b) {
      return seqs_[static_cast<size_t>(a)].slot < seqs_[static_cast<size_t>(b)].slot;
    });
    const int64_t A = static_cast<int64_t>(running_.size());
    std::vector<int64_t> slots(static_cast<size_t>(A));
    at::Tensor tokens_A = at::empty({A}, at::TensorOptions().dtype(at::kLong));
    int64_t* tok = tokens_A.data_ptr<int64_t>();
    for (int64_t i = 0; i < A; ++i) {
      const int64_t si = running_[static_cast<size_t>(i)];
      slots[static_cast<size_t>(i)] = seqs_[static_cast<size_t>(si)].slot;
      tok[i] = batch_.samples[static_cast<size_t>(si)].completion_tokens.back();
    }
    before_forward();
    const at::Tensor logits_AV = host_logits(
        policy_.decode(*cache_, slots, tokens_A, forward_options()), static_cast<size_t>(A));
    if (record_routing_) {
      const HostRouting r = host_routing();
      for (int64_t i = 0; i < A; ++i)
        batch_.samples[static_cast<size_t>(running_[static_cast<size_t>(i)])].routing.push_back(
            r.row(i));
    }
    const float* base = logits_AV.data_ptr<float>();

    // Rows are independent (own stream, own logits), so the thread split
    // cannot change any result.
    std::vector<SampledToken> drawn(static_cast<size_t>(A));
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(V_, 1));
    at::parallel_for(0, A, grain, [&](int64_t begin, int64_t end) {
      SamplerScratch scratch;
      for (int64_t i = begin; i < end; ++i) {
        const int64_t si = running_[static_cast<size_t>(i)];
        drawn[static_cast<size_t>(i)] =
            draw(base + i * V_, si, seqs_[static_cast<size_t>(si)], &scratch);
      }
    });

    std::vector<int64_t> still;
    still.reserve(running_.size());
    for (int64_t i = 0; i < A; ++i) {
      const int64_t si = running_[static_cast<size_t>(i)];
      if (accept(si, drawn[static_cast<size_t>(i)]))
        free_.push_back(seqs_[static_cast<size_t>(si)].slot);
      else
        still.push_back(si);
    }
    running_.swap(still);
    batch_.stats.decode_tokens += A;
    batch_.stats.generated_tokens += A;
    ++batch_.stats.decode_steps;
    batch_.stats.decode_seconds += seconds_since(t0);
  }

  SampledToken draw(const float* row, int64_t si, SeqState& st, SamplerScratch* scratch = nullptr) {
    SamplerScratch local;
    try {
      return sample_token(row, V_, params_, st.rng, scratch ? *scratch : local);
    } catch (const Error& e) {
      const RolloutSample& s = batch_.samples[static_cast<size_t>(si)];
      ZR_THROW("rollout: prompt ", s.prompt_id, " sample ", s.sample_index, " at completion token ",
               s.completion_tokens.size(), ": ", e.what());
    }
  }

  // Record a sampled token; true when the sample is finished.
  bool accept(int64_t si, const SampledToken& tok) {
    RolloutSample& s = batch_.samples[static_cast<size_t>(si)];
    SeqState& st = seqs_[static_cast<size_t>(si)];
    s.completion_tokens.push_back(tok.id);
    s.logp.push_back(tok.logp);
    bool done = false;
    if (stop_ids_.count(tok.id)) {
      s.finish = FinishReason::kEndOfText;
      done = true;
    } else if (text_) {
      const size_t old = st.bytes.size();
      // Ids past the tokenizer's table (a padded model vocabulary) add no text.
      if (tok.id < text_->vocab_size()) st.bytes += text_->bytes(tok.id);
      const size_t end = stops_.empty() ? StopMatcher::npos : stops_.find_new(st.bytes, old);
      if (end != StopMatcher::npos) {
        st.bytes.resize(end);
        s.finish = FinishReason::kStopString;
        done = true;
      }
    }
    if (!done && s.completion_length() >= params_.max_new_tokens) {
      s.finish = FinishReason::kLength;
      done = true;
    }
    st.done = done;
    return done;
  }

  const TokenText* text_;
  const bool record_routing_;
  Comm* lockstep_ = nullptr;  // the EP group of an expert-parallel policy, else null
  model::CausalLM& policy_;
  const std::vector<PromptInput>& prompts_;
  const int64_t G_;
  const SamplingParams& params_;
  StopMatcher stops_;
  std::unordered_set<int64_t> stop_ids_;
  int64_t V_ = 0, max_len_ = 0, num_slots_ = 0;

  RolloutBatch batch_;
  std::vector<SeqState> seqs_;
  std::unique_ptr<model::KvCache> cache_;
  std::vector<int64_t> free_;                        // free slots (popped from the back)
  std::vector<int64_t> running_;                     // sample indices being decoded
  std::vector<int64_t> admitted_;                    // per prompt: samples given a slot so far
  std::vector<std::vector<float>> template_logits_;  // per prompt: last prompt token's logits [V]
  std::vector<std::vector<std::vector<int32_t>>>
      template_routing_;  // per prompt (record_routing): the prompt tokens' routing rows
  int64_t next_prompt_ = 0;
  std::deque<int64_t>
      reprefill_;  // prompts whose template was consumed before their group was done
  int64_t held_ = -1, held_slot_ = -1;  // prompt whose prefilled template waits for free slots
};

}  // namespace

RolloutBatch Engine::generate(model::CausalLM& policy, const std::vector<PromptInput>& prompts,
                              int64_t group_size, const SamplingParams& params) {
  ZR_CHECK(group_size >= 1, "rollout: group_size must be >= 1, got ", group_size);
  params.validate("rollout sampling params");
  ZR_CHECK(text_ || params.stop_strings.empty(),
           "rollout: stop strings need a TokenText (construct the Engine with the tokenizer's text "
           "table)");
  Run run(options_, text_.get(), policy, prompts, group_size, params);
  return run.run();
}

}  // namespace zerorl::rollout
