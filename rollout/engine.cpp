#include "rollout/engine.h"

#include <ATen/ATen.h>

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
#include "model/static_decode.h"
#include "rollout/batch_sampler.h"

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
  char buf[512];
  std::snprintf(
      buf, sizeof buf,
      "samples %lld, prefill %lld tok in %.3fs (%.0f tok/s, %lld prefills), decode %lld "
      "tok in %.3fs "
      "(%.0f tok/s, %lld steps, occupancy %.2f of %lld slots), KV cache peak %lld of "
      "%lld blocks (%.1f MiB), %lld preemptions (%lld tokens recomputed), %lld stop checks "
      "(%lld tokens discarded), total %.3fs",
      static_cast<long long>(num_samples), static_cast<long long>(prefill_tokens), prefill_seconds,
      prefill_tokens_per_s(), static_cast<long long>(num_prefills),
      static_cast<long long>(decode_tokens), decode_seconds, decode_tokens_per_s(),
      static_cast<long long>(decode_steps), occupancy(), static_cast<long long>(num_slots),
      static_cast<long long>(peak_cache_blocks), static_cast<long long>(cache_blocks),
      static_cast<double>(peak_cache_bytes()) / (1 << 20), static_cast<long long>(num_preemptions),
      static_cast<long long>(recompute_tokens), static_cast<long long>(stop_checks),
      static_cast<long long>(discarded_tokens), total_seconds);
  return buf;
}

EngineOptions engine_options(const RolloutConfig& rollout) {
  EngineOptions eo;
  eo.slots(rollout.num_slots).blocks(rollout.kv_block_size);
  eo.kv_cache_bytes =
      static_cast<int64_t>(rollout.kv_cache_gb * static_cast<double>(int64_t{1} << 30));
  eo.kv_cache_memory_fraction = rollout.kv_cache_memory_fraction;
  eo.stop_check_every = rollout.stop_check_every;
  eo.cuda_graphs = rollout.cuda_graphs;
  return eo;
}

Engine::Engine(EngineOptions options, std::shared_ptr<const TokenText> text)
    : options_(std::move(options)), text_(std::move(text)) {
  ZR_CHECK(options_.num_slots >= 1, "rollout engine: num_slots must be >= 1, got ",
           options_.num_slots);
  ZR_CHECK(options_.stop_check_every >= 0,
           "rollout engine: stop_check_every must be >= 0 (0: auto), got ",
           options_.stop_check_every);
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Per-sample generation state beside its RolloutSample.  The sample's
// tokens live on the device (Run::tok_SM_) while it decodes; its
// RolloutSample holds the first completion_length() of its `len` tokens (all
// of them once it finished or was preempted).
struct SeqState {
  Rng rng;
  std::string bytes;  // completion text of its first text_len tokens (raw bytes)
  int64_t slot = -1;
  int64_t admitted_at = -1;  // admission counter when it last got a slot (newest preempted first)
  int64_t len = 0;           // completion tokens drawn
  int64_t seen = 0;          // completion tokens whose finishing flags the host has read
  int64_t text_len = 0;      // completion tokens whose bytes are in `bytes`
  bool done = false;
};

// One generate() call.  Kept as a class so the admission policy, the decode
// step and the finishing rules each read as one short function.
class Run {
 public:
  Run(const EngineOptions& opt, const TokenText* text, model::CausalLM& policy,
      const std::vector<PromptInput>& prompts, int64_t G, const SamplingParams& params,
      model::StaticDecoder* decoder)
      : text_(text),
        opt_(opt),
        record_routing_(opt.record_routing),
        policy_(policy),
        prompts_(prompts),
        G_(G),
        params_(params),
        stops_(params.stop_strings),
        decoder_(decoder) {
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
    // A decoder keeps its cache between calls while the geometry stays:
    // its length is rounded up to a power of two of blocks, so a rollout
    // whose longest prompt changes a little reuses it (and its graphs).
    cache_len_ = need;
    if (decoder_) {
      const int64_t bs = std::max<int64_t>(opt.block_size, 1);
      int64_t blocks = 1;
      while (blocks * bs < need) blocks *= 2;
      cache_len_ = std::min(blocks * bs, cfg.max_position);
    }

    num_slots_ = std::min<int64_t>(opt.num_slots, P * G);
    size_pool(cfg);
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
    if (decoder_) {
      cache_ = &decoder_->cache(policy_, num_slots_, cache_len_, opt_.block_size, num_blocks_);
      stats0_ = decoder_->stats();
    } else {
      own_cache_ = std::make_unique<model::KvCache>(
          policy_.make_cache(num_slots_, max_len_, opt_.block_size, num_blocks_));
      cache_ = own_cache_.get();
    }
    init_device_state();
    for (int64_t s = num_slots_ - 1; s >= 0; --s) free_.push_back(s);
    for (;;) {
      admit();
      if (running_.empty()) {
        if (held_ >= 0) {
          release_template();  // no slot or block for a copy: the template decodes itself
          continue;
        }
        ZR_CHECK(!work_waits(), "rollout: internal error, work waits but nothing can run (",
                 cache_->num_free_blocks(), " of ", cache_->num_blocks(), " blocks free)");
        break;  // nothing running, nothing waiting
      }
      make_room();
      // Looking at the flags to make room may have found every running
      // sample finished: admit again (or end) rather than decode nothing.
      if (running_.empty()) continue;
      decode_step();
    }
    join_peers_until_done();
    batch_.stats.peak_cache_blocks = cache_->peak_used_blocks();
    if (decoder_) {
      const model::StaticDecoder::Stats& d = decoder_->stats();
      batch_.stats.static_steps = d.steps - stats0_.steps;
      batch_.stats.graph_replays = d.replays - stats0_.replays;
      batch_.stats.graph_captures = d.captures - stats0_.captures;
      batch_.stats.padded_rows = d.padded_rows - stats0_.padded_rows;
    }
    for (size_t i = 0; i < seqs_.size(); ++i) {
      ZR_CHECK(seqs_[i].done, "rollout: internal error, sample ", i, " did not finish");
      if (text_) batch_.samples[i].text = utf8_sanitize(seqs_[i].bytes);
    }
    batch_.stats.total_seconds = seconds_since(t0);
    return std::move(batch_);
  }

 private:
  // The pool: kv_cache_bytes, or the free-memory fraction, capped at what
  // num_slots sequences of max_len could ever hold.
  void size_pool(const model::ModelConfig& cfg) {
    const int64_t bs = opt_.block_size;
    ZR_CHECK(bs >= 1, "rollout: the KV cache block size must be >= 1, got ", bs);
    if (num_slots_ == 0) return;  // no prompts (a rank that only joins its EP peers)
    const at::ScalarType dt = policy_.output_weight().scalar_type();
    const int64_t block_bytes = model::KvCache::block_bytes(cfg, bs, dt);
    const int64_t per_seq = (max_len_ + bs - 1) / bs;
    // The pool's cap: what num_slots sequences of the cache's length could
    // use (a decoder's length is rounded up, above).
    const int64_t cap_per_seq = (cache_len_ + bs - 1) / bs;
    int64_t budget = 0;
    std::string source;
    if (opt_.kv_cache_bytes > 0) {
      budget = opt_.kv_cache_bytes;
      source = "rollout.kv_cache_gb";
    } else {
      ZR_CHECK(opt_.kv_cache_memory_fraction > 0 && opt_.kv_cache_memory_fraction <= 1,
               "rollout: kv_cache_memory_fraction must be in (0, 1], got ",
               opt_.kv_cache_memory_fraction);
      // A decoder's pool from the last call is about to be reused or
      // replaced: its memory counts as free.
      const at::Device dev = policy_.output_weight().device();
      budget =
          static_cast<int64_t>(opt_.kv_cache_memory_fraction *
                               static_cast<double>(model::KvCache::free_device_bytes(dev) +
                                                   (decoder_ ? decoder_->held_bytes(dev) : 0)));
      source = "rollout.kv_cache_memory_fraction of the free device memory";
    }
    num_blocks_ = std::min(num_slots_ * cap_per_seq, budget / block_bytes);
    ZR_CHECK(num_blocks_ >= per_seq, "rollout: the KV cache pool (", source, ": ", budget,
             " bytes, ", budget / block_bytes, " blocks of ", bs, " positions at ", block_bytes,
             " bytes each) cannot hold one sequence of the longest prompt + max_new_tokens - 1 = ",
             max_len_, " tokens (", per_seq, " blocks); raise rollout.kv_cache_gb");
    batch_.stats.block_size = bs;
    batch_.stats.cache_blocks = num_blocks_;
    batch_.stats.cache_block_bytes = block_bytes;
  }

  bool work_waits() const {
    return held_ >= 0 || !preempted_.empty() || !reprefill_.empty() || next_prompt_ < num_prompts();
  }
  int64_t blocks_for(int64_t tokens) const {
    return (tokens + opt_.block_size - 1) / opt_.block_size;
  }

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
  // Blocks: an admission goes ahead only if the pool then still has one free
  // block for the next decode step of every sequence holding a slot (held
  // templates included), or if no slot is held at all (then one sequence
  // always fits: size_pool checked it).  Otherwise the newest work waits.
  struct BlockBudget {
    int64_t free_blocks;  // free now, less what this round's prefills and copies take
    int64_t reserve;      // blocks the occupied slots may take in the next step
    bool empty;           // no slot occupied yet
    // One more sequence, taking `blocks` now and `next` (0 or 1) in its
    // first decode step.
    bool take(int64_t blocks, int64_t next) {
      const bool ok = empty ? blocks <= free_blocks : blocks + reserve + next <= free_blocks;
      if (ok) {
        free_blocks -= blocks;
        reserve += next;
        empty = false;
      }
      return ok;
    }
  };
  BlockBudget block_budget() const {
    std::vector<int64_t> occupied;
    for (int64_t si : running_) occupied.push_back(seqs_[static_cast<size_t>(si)].slot);
    if (held_ >= 0) occupied.push_back(held_slot_);
    const int64_t reserve =
        occupied.empty()
            ? 0
            : cache_->blocks_to_append(occupied, std::vector<int64_t>(occupied.size(), 1));
    return {cache_->num_free_blocks(), reserve, occupied.empty()};
  }

  // A prefill of this round: a prompt into its template slot, or a
  // preempted sample's prompt ++ completion (sample >= 0) to resume it.
  struct PrefillItem {
    int64_t slot, prompt, sample;
  };
  struct Copy {
    int64_t prompt, src;
    std::vector<int64_t> dsts;
  };

  void admit() {
    if (free_.empty()) return;
    const auto t0 = Clock::now();
    BlockBudget budget = block_budget();
    std::vector<PrefillItem> prefills;
    std::vector<Copy> copies;
    std::vector<std::pair<int64_t, int64_t>> started;  // (sample index, slot) needing a first token

    // Hand out copies of a prefilled template in slot `src` for prompt p;
    // the template becomes the group's last sample once all others have slots.
    auto distribute = [&](int64_t p, int64_t src) {
      Copy c{p, src, {}};
      const int64_t copy_blocks =
          opt_.share_prefix ? 0 : blocks_for(prompts_[static_cast<size_t>(p)].tokens.size());
      const int64_t next_blocks = params_.max_new_tokens > 1 ? 1 : 0;
      while (!free_.empty() && admitted_[static_cast<size_t>(p)] < G_ - 1 &&
             budget.take(copy_blocks, next_blocks)) {
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
    while (held_ < 0 && !free_.empty()) {
      // Resume preempted samples first, then groups whose template was
      // consumed early, then new prompts.
      if (!preempted_.empty()) {
        const int64_t si = preempted_.front();
        const RolloutSample& s = batch_.samples[static_cast<size_t>(si)];
        if (!budget.take(blocks_for(s.prompt_length() + s.completion_length()),
                         s.completion_length() + 1 < params_.max_new_tokens ? 1 : 0))
          break;
        preempted_.pop_front();
        prefills.push_back({pop_free(), -1, si});
        continue;
      }
      int64_t p;
      if (!reprefill_.empty()) {
        p = reprefill_.front();
      } else if (next_prompt_ < num_prompts()) {
        p = next_prompt_;
      } else {
        break;
      }
      if (!budget.take(blocks_for(prompts_[static_cast<size_t>(p)].tokens.size()),
                       params_.max_new_tokens > 1 ? 1 : 0))
        break;
      if (!reprefill_.empty())
        reprefill_.pop_front();
      else
        ++next_prompt_;
      const int64_t slot = pop_free();
      prefills.push_back({slot, p, -1});
      if (!distribute(p, slot)) {
        held_ = p;
        held_slot_ = slot;
      }
    }

    std::vector<std::pair<int64_t, at::Tensor>> resumed;  // (sample, next-token logits [V])
    if (!prefills.empty()) resumed = prefill(prefills);
    for (const Copy& c : copies) {
      if (opt_.share_prefix)
        cache_->share_slot(c.src, c.dsts);
      else
        cache_->copy_slot(c.src, c.dsts);
    }

    // First tokens come from the prompt's prefill logits, and a resumed
    // sample's next one from its recomputed logits: one batched draw.  The
    // template slot of a held prompt stays idle until its group is fully
    // admitted.
    std::vector<int64_t> sis, slots;
    std::vector<at::Tensor> rows;
    for (const auto& [si, slot] : started) {
      const int64_t p = si / G_;
      if (record_routing_)
        batch_.samples[static_cast<size_t>(si)].routing = template_routing_[static_cast<size_t>(p)];
      sis.push_back(si);
      slots.push_back(slot);
      rows.push_back(template_logits_[static_cast<size_t>(p)]);
    }
    for (const auto& [si, row] : resumed) {
      sis.push_back(si);
      slots.push_back(seqs_[static_cast<size_t>(si)].slot);
      rows.push_back(row);
    }
    if (!sis.empty()) start(sis, slots, at::stack(rows));
    for (const auto& [si, slot] : started) {
      const int64_t p = si / G_;
      if (admitted_[static_cast<size_t>(p)] == G_) {
        template_logits_[static_cast<size_t>(p)] = at::Tensor();
        if (record_routing_) template_routing_[static_cast<size_t>(p)] = {};
      }
    }
    batch_.stats.prefill_seconds += seconds_since(t0);
    // A sample that finished on its first token freed its slot: fill it now.
    if ((!started.empty() || !resumed.empty()) && !free_.empty() && work_waits()) admit();
  }

  // Samples sis[i] take slots[i] and their next token from row i of
  // logits_AV (in this order: admission order and freed slots as one by one).
  void start(const std::vector<int64_t>& sis, const std::vector<int64_t>& slots,
             const at::Tensor& logits_AV) {
    for (size_t i = 0; i < sis.size(); ++i) {
      SeqState& st = seqs_[static_cast<size_t>(sis[i])];
      st.slot = slots[i];
      st.admitted_at = admissions_++;
    }
    sample_rows(logits_AV, sis);
    batch_.stats.generated_tokens += static_cast<int64_t>(sis.size());
    // A first token is checked at once (admission syncs with the host anyway).
    const std::vector<char> done = check(sis);
    for (size_t i = 0; i < sis.size(); ++i) {
      if (done[i])
        finish_slot(slots[i]);
      else
        running_.push_back(sis[i]);
    }
  }

  void finish_slot(int64_t slot) {
    cache_->reset(slot);  // its blocks go back to the pool (shared ones once unreferenced)
    free_.push_back(slot);
  }

  // Runs the round's prefills as one batched call; keeps each prompt's
  // last-token logits (and routing) for its samples and returns each resumed
  // sample's next-token logits.
  std::vector<std::pair<int64_t, at::Tensor>> prefill(const std::vector<PrefillItem>& items) {
    std::vector<std::vector<int64_t>> tokens;
    std::vector<int64_t> slots;
    tokens.reserve(items.size());
    for (const PrefillItem& it : items) {
      cache_->reset(it.slot);
      slots.push_back(it.slot);
      if (it.sample < 0) {
        tokens.push_back(prompts_[static_cast<size_t>(it.prompt)].tokens);
        batch_.stats.prefill_tokens += static_cast<int64_t>(tokens.back().size());
        ++batch_.stats.num_prefills;
      } else {
        const RolloutSample& s = batch_.samples[static_cast<size_t>(it.sample)];
        tokens.push_back(s.prompt_tokens);
        tokens.back().insert(tokens.back().end(), s.completion_tokens.begin(),
                             s.completion_tokens.end());
        batch_.stats.recompute_tokens += static_cast<int64_t>(tokens.back().size());
        seqs_[static_cast<size_t>(it.sample)].slot = it.slot;
      }
    }
    // One forward for the round.  Each sequence's attention runs at its own
    // shapes (CacheStep::per_row) and the token-wise layers are
    // row-invariant, so its logits, routing and first token are the bits a
    // forward of its own gives, whatever else was prefilled in the round
    // (batch invariance, kernels/batch_invariant.h).
    before_forward();
    const at::Tensor logits_NV =
        checked_logits(policy_.prefill(*cache_, slots, tokens, forward_options()), items.size());
    std::vector<std::pair<int64_t, at::Tensor>> resumed;
    for (size_t i = 0; i < items.size(); ++i) {
      const at::Tensor row = logits_NV[static_cast<int64_t>(i)];
      if (items[i].sample < 0)
        template_logits_[static_cast<size_t>(items[i].prompt)] = row;
      else
        resumed.emplace_back(items[i].sample, row);
    }
    if (record_routing_) {
      // Rows of the routing record are the prefilled tokens in call order.  A
      // resumed sample already holds the rows of all but its last token.
      const HostRouting r = host_routing(policy_.last_routing());
      int64_t row = 0;
      for (size_t i = 0; i < items.size(); ++i) {
        const int64_t n = static_cast<int64_t>(tokens[i].size());
        if (items[i].sample < 0) {
          auto& dst = template_routing_[static_cast<size_t>(items[i].prompt)];
          dst.clear();
          for (int64_t t = 0; t < n; ++t) dst.push_back(r.row(row + t));
        } else {
          batch_.samples[static_cast<size_t>(items[i].sample)].routing.push_back(
              r.row(row + n - 1));
        }
        row += n;
      }
    }
    return resumed;
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
  static HostRouting host_routing(const std::vector<at::Tensor>& routing) {
    HostRouting r;
    for (const at::Tensor& t : routing)
      r.layers.push_back(t.to(at::kCPU).to(at::kLong).contiguous());
    return r;
  }

  // The model's fp32 logits, left on its device (sampled there).
  at::Tensor checked_logits(const at::Tensor& logits, size_t rows) const {
    ZR_CHECK(
        logits.dim() == 2 && logits.size(0) == static_cast<int64_t>(rows) && logits.size(1) == V_,
        "rollout: model returned logits of shape ", logits.sizes(), ", expected [", rows, ", ", V_,
        "]");
    return logits.to(at::kFloat);
  }

  // Nothing is running and the template cannot be copied (num_slots < G,
  // or no block for a copy): it decodes as the next sample and the rest of
  // the group is prefilled again later.
  void release_template() {
    const int64_t p = held_;
    const int64_t si = p * G_ + admitted_[static_cast<size_t>(p)]++;
    held_ = -1;
    if (record_routing_)
      batch_.samples[static_cast<size_t>(si)].routing = template_routing_[static_cast<size_t>(p)];
    start({si}, {held_slot_}, template_logits_[static_cast<size_t>(p)].unsqueeze(0));
    if (admitted_[static_cast<size_t>(p)] < G_) reprefill_.push_front(p);
  }

  // ---- preemption: make the next decode step fit the pool ----
  // Newest first (as vLLM): a preempted sample frees its slot and blocks and
  // is resumed before any other waiting work.  If one sequence alone still
  // lacks blocks, a held template (whose blocks it may share) is dropped and
  // its prompt prefilled again later.
  void make_room() {
    for (;;) {
      std::vector<int64_t> slots;
      for (int64_t si : running_) slots.push_back(seqs_[static_cast<size_t>(si)].slot);
      const int64_t need = cache_->blocks_to_append(slots, std::vector<int64_t>(slots.size(), 1));
      if (need <= cache_->num_free_blocks()) return;
      if (unchecked_steps_ > 0) {  // finished samples not yet seen free their blocks first
        check_running();
        continue;
      }
      if (running_.size() > 1) {
        const auto newest =
            std::max_element(running_.begin(), running_.end(), [this](int64_t a, int64_t b) {
              return seqs_[static_cast<size_t>(a)].admitted_at <
                     seqs_[static_cast<size_t>(b)].admitted_at;
            });
        const int64_t si = *newest;
        running_.erase(newest);
        sync_tokens({si});  // its completion so far is prefilled again on resume
        finish_slot(seqs_[static_cast<size_t>(si)].slot);
        seqs_[static_cast<size_t>(si)].slot = -1;
        preempted_.push_front(si);
        ++batch_.stats.num_preemptions;
        continue;
      }
      if (held_ >= 0) {
        finish_slot(held_slot_);
        reprefill_.push_front(held_);
        held_ = -1;
        continue;
      }
      ZR_THROW("rollout: internal error, one sequence needs ", need, " KV cache blocks and only ",
               cache_->num_free_blocks(), " of ", cache_->num_blocks(), " are free");
    }
  }

  // ---- one decode step over every running sample ----
  void decode_step() {
    const auto t0 = Clock::now();
    // Ascending slots: a fixed order (which of two sharers copies a shared
    // block first) whatever the admission history.
    std::sort(running_.begin(), running_.end(), [this](int64_t a, int64_t b) {
      return seqs_[static_cast<size_t>(a)].slot < seqs_[static_cast<size_t>(b)].slot;
    });
    const int64_t A = static_cast<int64_t>(running_.size());
    std::vector<int64_t> slots(static_cast<size_t>(A));
    for (int64_t i = 0; i < A; ++i)
      slots[static_cast<size_t>(i)] =
          seqs_[static_cast<size_t>(running_[static_cast<size_t>(i)])].slot;
    // Each slot's last token, never leaving the device.
    const at::Tensor tokens_A = last_tok_S_.index_select(0, on_device(slots));
    before_forward();
    // A fixed-shape step (padded to its bucket, maybe a graph's replay)
    // where a decoder runs and the batch fits its largest bucket.
    at::Tensor out;
    if (decoder_) out = decoder_->decode(policy_, *cache_, slots, tokens_A, forward_options());
    const bool fixed = out.defined();
    if (!fixed) out = policy_.decode(*cache_, slots, tokens_A, forward_options());
    const at::Tensor logits_AV = checked_logits(out, static_cast<size_t>(A));
    if (record_routing_) {
      const HostRouting r = host_routing(fixed ? decoder_->last_routing() : policy_.last_routing());
      for (int64_t i = 0; i < A; ++i)
        batch_.samples[static_cast<size_t>(running_[static_cast<size_t>(i)])].routing.push_back(
            r.row(i));
    }
    sample_rows(logits_AV, running_);
    batch_.stats.decode_tokens += A;
    batch_.stats.generated_tokens += A;
    ++batch_.stats.decode_steps;
    ++unchecked_steps_;
    // The host reads the flags every check_every_ steps, and at once when a
    // sample reaches max_new_tokens (it must not decode past its row).
    bool due = unchecked_steps_ >= check_every_;
    for (size_t i = 0; i < running_.size() && !due; ++i)
      due = seqs_[static_cast<size_t>(running_[i])].len >= params_.max_new_tokens;
    if (due) check_running();
    batch_.stats.decode_seconds += seconds_since(t0);
  }

  // Reads the flags of every running sample and retires those that finished.
  void check_running() {
    const std::vector<char> done = check(running_);
    std::vector<int64_t> still;
    still.reserve(running_.size());
    for (size_t i = 0; i < running_.size(); ++i) {
      const int64_t si = running_[i];
      if (done[i])
        finish_slot(seqs_[static_cast<size_t>(si)].slot);
      else
        still.push_back(si);
    }
    running_.swap(still);
    unchecked_steps_ = 0;
  }

  // ---- sampling and finishing, on the device ----
  // The device keeps every slot's completion tokens, behaviour log-probs and
  // finishing flags (tok_SM_, logp_SM_, flag_SM_: [num_slots,
  // max_new_tokens]), the OR of its flags since the host last read them
  // (any_S_) and its last token (last_tok_S_, the next decode step's input);
  // the stop ids and the stop-string candidates (tokens holding a stop
  // string's last byte) are tensors there too.
  void init_device_state() {
    dev_ = policy_.output_weight().device();
    const auto lopt = at::TensorOptions().dtype(at::kLong).device(dev_);
    tok_SM_ = at::zeros({num_slots_, params_.max_new_tokens}, lopt);
    logp_SM_ = at::zeros({num_slots_, params_.max_new_tokens}, lopt.dtype(at::kDouble));
    flag_SM_ = at::zeros({num_slots_, params_.max_new_tokens}, lopt.dtype(at::kByte));
    any_S_ = at::zeros({num_slots_}, lopt.dtype(at::kByte));
    last_tok_S_ = at::zeros({num_slots_}, lopt);
    std::vector<int64_t> ids(stop_ids_.begin(), stop_ids_.end());
    std::sort(ids.begin(), ids.end());
    stop_ids_K_ = on_device(ids);
    if (text_ && !stops_.empty())
      candidate_V_ = stop_candidates(*text_, params_.stop_strings, V_).to(dev_);
    check_every_ = opt_.stop_check_every > 0 ? opt_.stop_check_every
                                             : (dev_.is_cpu() ? 1 : kStopCheckEveryOnDevices);
  }
  at::Tensor on_device(const std::vector<int64_t>& v) const {
    return at::tensor(v, at::kLong).to(dev_);
  }

  // Draws row i's token for sample sis[i] (which holds a slot) from
  // logits_AV on the device, each from the sample's own stream (its
  // uniforms are made here: one per token unless greedy), and records its
  // finishing flags there; nothing comes back to the host.
  void sample_rows(const at::Tensor& logits_AV, const std::vector<int64_t>& sis) {
    const size_t A = sis.size();
    std::vector<int64_t> slots(A), pos(A);
    std::vector<double> u;
    for (size_t i = 0; i < A; ++i) {
      SeqState& st = seqs_[static_cast<size_t>(sis[i])];
      slots[i] = st.slot;
      pos[i] = st.len++;
      if (!params_.greedy()) u.push_back(st.rng.uniform());
    }
    const at::Tensor u_A = params_.greedy()
                               ? at::Tensor()
                               : at::tensor(u, at::kDouble).to(dev_, /*non_blocking=*/true);
    const BatchDraw d = sample_batch(logits_AV, u_A, params_);
    const at::Tensor slots_A = on_device(slots), pos_A = on_device(pos);
    tok_SM_.index_put_({slots_A, pos_A}, d.token_A);
    logp_SM_.index_put_({slots_A, pos_A}, d.logp_A);
    last_tok_S_.index_put_({slots_A}, d.token_A);
    const at::Tensor flags_A = stop_flags(d, stop_ids_K_, candidate_V_);
    flag_SM_.index_put_({slots_A, pos_A}, flags_A);
    any_S_.index_put_({slots_A}, any_S_.index_select(0, slots_A).bitwise_or_(flags_A));
  }

  // The host's look at samples sis (each holding a slot): one flag byte per
  // sample (the OR since its last look; the sync), then the tokens, log-probs
  // and flags of those that need it (a flag raised: stop id, possible stop
  // string, bad logits; or max_new_tokens reached), whose positions since
  // the last look are walked in order with the finishing rules (engine.h).
  // A sample that finished at position t before its last drawn token keeps
  // tokens 0..t; the rest, decoded because the host had not looked yet, are
  // discarded, so the result is the one of a look after every token.
  // Returns per sample whether it finished.
  std::vector<char> check(const std::vector<int64_t>& sis) {
    const size_t A = sis.size();
    std::vector<char> done(A, 0);
    if (A == 0) return done;
    ++batch_.stats.stop_checks;
    std::vector<int64_t> slots(A);
    for (size_t i = 0; i < A; ++i) slots[i] = seqs_[static_cast<size_t>(sis[i])].slot;
    const at::Tensor slots_A = on_device(slots);
    const at::Tensor any_A = any_S_.index_select(0, slots_A).to(at::kCPU);
    any_S_.index_fill_(0, slots_A, 0);
    const uint8_t* any = any_A.data_ptr<uint8_t>();
    std::vector<int64_t> look;
    std::vector<size_t> look_row;
    for (size_t i = 0; i < A; ++i) {
      SeqState& st = seqs_[static_cast<size_t>(sis[i])];
      if (any[i] != 0 || st.len >= params_.max_new_tokens) {
        look.push_back(sis[i]);
        look_row.push_back(i);
      } else {
        st.seen = st.len;  // nothing flagged: no token can finish it
      }
    }
    if (look.empty()) return done;
    const at::Tensor flags = sync_tokens(look);
    for (size_t j = 0; j < look.size(); ++j)
      done[look_row[j]] =
          walk(look[j], flags.data_ptr<uint8_t>() + static_cast<int64_t>(j) * flags.size(1)) ? 1
                                                                                             : 0;
    return done;
  }

  // Walks sample si's positions seen..len-1 (flags f[t]) as a look after
  // each token would; true when it finished (its tokens then cut after the
  // finishing one).
  bool walk(int64_t si, const uint8_t* f) {
    SeqState& st = seqs_[static_cast<size_t>(si)];
    const int64_t drawn = st.len;
    for (int64_t t = st.seen; t < drawn; ++t) {
      if (f[t] & kBadLogits) report_bad_logits(si, t);
      if (f[t] == 0 && t + 1 < params_.max_new_tokens) continue;
      if (finished(si, t + 1, f[t])) {
        discard_after(si, t + 1);
        return true;
      }
    }
    st.seen = drawn;
    return false;
  }

  // Sample si finished with its first n tokens: the ones drawn after them
  // (and their routing rows) are dropped.
  void discard_after(int64_t si, int64_t n) {
    RolloutSample& s = batch_.samples[static_cast<size_t>(si)];
    SeqState& st = seqs_[static_cast<size_t>(si)];
    const int64_t extra = st.len - n;
    if (extra == 0) return;
    s.completion_tokens.resize(static_cast<size_t>(n));
    s.logp.resize(static_cast<size_t>(n));
    if (record_routing_) s.routing.resize(static_cast<size_t>(s.prompt_length() + n - 1));
    st.len = n;
    batch_.stats.generated_tokens -= extra;
    batch_.stats.discarded_tokens += extra;
  }

  // Copies the samples' tokens and log-probs not yet on the host from their
  // slots' rows (one transfer for all of them) and returns their flag rows
  // (uint8 [n, max_new_tokens], CPU).
  at::Tensor sync_tokens(const std::vector<int64_t>& sis) {
    std::vector<int64_t> slots;
    for (int64_t si : sis) slots.push_back(seqs_[static_cast<size_t>(si)].slot);
    const at::Tensor idx = on_device(slots);
    const at::Tensor tok = tok_SM_.index_select(0, idx).to(at::kCPU);
    const at::Tensor logp = logp_SM_.index_select(0, idx).to(at::kCPU);
    for (size_t i = 0; i < sis.size(); ++i) {
      RolloutSample& s = batch_.samples[static_cast<size_t>(sis[i])];
      const SeqState& st = seqs_[static_cast<size_t>(sis[i])];
      const int64_t* tp = tok.data_ptr<int64_t>() + static_cast<int64_t>(i) * tok.size(1);
      const double* lp = logp.data_ptr<double>() + static_cast<int64_t>(i) * logp.size(1);
      for (int64_t t = s.completion_length(); t < st.len; ++t) {
        s.completion_tokens.push_back(tp[t]);
        s.logp.push_back(lp[t]);
      }
    }
    return flag_SM_.index_select(0, idx).to(at::kCPU);
  }

  // The finishing rules (engine.h, "Finishing") for a sample whose first
  // `end` tokens are on the host, given token end-1's flags; true when it
  // finished there.
  bool finished(int64_t si, int64_t end, uint8_t flags) {
    RolloutSample& s = batch_.samples[static_cast<size_t>(si)];
    SeqState& st = seqs_[static_cast<size_t>(si)];
    const bool stop_token = (flags & kStopToken) != 0;
    if (text_) {
      // Bytes of the tokens since the last look (a stop id adds none).  Only
      // the last token can end a stop string: earlier ones held no stop
      // string's last byte, or were looked at in their own turn.
      const size_t old = st.bytes.size();
      const int64_t upto = stop_token ? end - 1 : end;
      for (int64_t t = st.text_len; t < upto; ++t) {
        const int64_t id = s.completion_tokens[static_cast<size_t>(t)];
        // Ids past the tokenizer's table (a padded model vocabulary) add no text.
        if (id < text_->vocab_size()) st.bytes += text_->bytes(id);
      }
      st.text_len = upto;
      if (!stop_token && (flags & kStopCandidate) != 0) {
        const size_t cut = stops_.find_new(st.bytes, old);
        if (cut != StopMatcher::npos) {
          st.bytes.resize(cut);
          s.finish = FinishReason::kStopString;
          return st.done = true;
        }
      }
    }
    if (stop_token) {
      s.finish = FinishReason::kEndOfText;
      return st.done = true;
    }
    if (end >= params_.max_new_tokens) {
      s.finish = FinishReason::kLength;
      return st.done = true;
    }
    return false;
  }

  // NaN logits or no finite maximum at completion token t (flagged on the
  // device; the logits themselves are gone by the time the host looks).
  [[noreturn]] void report_bad_logits(int64_t si, int64_t t) {
    const RolloutSample& s = batch_.samples[static_cast<size_t>(si)];
    ZR_THROW("rollout: prompt ", s.prompt_id, " sample ", s.sample_index, " at completion token ",
             t,
             ": the policy's logits are NaN or have no finite maximum (sampler: the device "
             "flagged the row)");
  }

  const TokenText* text_;
  const EngineOptions& opt_;
  const bool record_routing_;
  Comm* lockstep_ = nullptr;  // the EP group of an expert-parallel policy, else null
  model::CausalLM& policy_;
  const std::vector<PromptInput>& prompts_;
  const int64_t G_;
  const SamplingParams& params_;
  StopMatcher stops_;
  std::unordered_set<int64_t> stop_ids_;
  model::StaticDecoder* decoder_;  // fixed-shape steps (and graphs), or null
  model::StaticDecoder::Stats stats0_;
  int64_t V_ = 0, max_len_ = 0, cache_len_ = 0, num_slots_ = 0, num_blocks_ = 0;
  at::Device dev_ = at::kCPU;
  at::Tensor tok_SM_, logp_SM_;  // per slot: completion tokens, behaviour log-probs
  at::Tensor flag_SM_;           // per slot: each token's StopFlag bits
  at::Tensor any_S_;             // per slot: OR of its flags since the host last looked
  at::Tensor last_tok_S_;        // per slot: the last token (the next decode input)
  int64_t check_every_ = 1;      // decode steps between the host's looks
  int64_t unchecked_steps_ = 0;  // decode steps since the last look at every running sample
  at::Tensor stop_ids_K_;        // stop token ids (int64, sorted)
  at::Tensor candidate_V_;       // bool [V]: holds a stop string's last byte (undefined: none)

  RolloutBatch batch_;
  std::vector<SeqState> seqs_;
  model::KvCache* cache_ = nullptr;  // own_cache_'s, or the decoder's (kept between calls)
  std::unique_ptr<model::KvCache> own_cache_;
  std::vector<int64_t> free_;                // free slots (popped from the back)
  std::vector<int64_t> running_;             // sample indices being decoded
  std::vector<int64_t> admitted_;            // per prompt: samples given a slot so far
  std::vector<at::Tensor> template_logits_;  // per prompt: last prompt token's logits [V] (device)
  std::vector<std::vector<std::vector<int32_t>>>
      template_routing_;  // per prompt (record_routing): the prompt tokens' routing rows
  int64_t next_prompt_ = 0;
  std::deque<int64_t>
      reprefill_;  // prompts whose template was consumed before their group was done
  int64_t held_ = -1, held_slot_ = -1;  // prompt whose prefilled template waits for free slots
  std::deque<int64_t> preempted_;       // samples preempted for blocks, resumed front first
  int64_t admissions_ = 0;
};

}  // namespace

RolloutBatch Engine::generate(model::CausalLM& policy, const std::vector<PromptInput>& prompts,
                              int64_t group_size, const SamplingParams& params) {
  ZR_CHECK(group_size >= 1, "rollout: group_size must be >= 1, got ", group_size);
  params.validate("rollout sampling params");
  ZR_CHECK(text_ || params.stop_strings.empty(),
           "rollout: stop strings need a TokenText (construct the Engine with the tokenizer's text "
           "table)");
  // A static decoder: CUDA graphs where the policy qualifies, or the eager
  // fixed-shape step where asked for (EngineOptions::static_decode).
  model::StaticDecoder* decoder = nullptr;
  const bool on_cuda = policy.output_weight().is_cuda();
  std::optional<model::StaticDecoder::Mode> mode;
  if (on_cuda && options_.cuda_graphs && model::decode_graphs_apply(policy))
    mode = model::StaticDecoder::Mode::kGraphs;
  else if (options_.static_decode && !policy.expert_grid())
    mode = model::StaticDecoder::Mode::kEager;
  if (mode) {
    if (!decoder_ || decoder_->mode() != *mode)
      decoder_ = std::make_shared<model::StaticDecoder>(*mode);
    decoder = decoder_.get();
  }
  // Without keep_decode_cache the decoder's pool and graphs go when the
  // call ends, however it ends.
  struct Release {
    model::StaticDecoder* d;
    bool keep;
    ~Release() {
      if (d && !keep) d->release();
    }
  } release{decoder, options_.keep_decode_cache};
  Run run(options_, text_.get(), policy, prompts, group_size, params, decoder);
  return run.run();
}

}  // namespace zerorl::rollout
