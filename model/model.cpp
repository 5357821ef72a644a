#include "model/model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "model/backbone.h"
#include "kernels/batch_invariant.h"
#include "model/paged_attention.h"

namespace zerorl::model {

CausalLM::CausalLM(const ModelConfig& cfg, bool random_init) : cfg_(cfg) {
  cfg_.validate();
  backbone_ = register_module("model", std::make_shared<Backbone>(cfg_));
  if (!cfg_.tie_embeddings)
    lm_head_ = register_module("lm_head",
                               std::make_shared<Linear>(cfg_.hidden_size, cfg_.vocab_size, false));
  for (int64_t i = 0; i < cfg_.num_layers; ++i)
    if (cfg_.layer_is_moe(i)) moe_layers_.push_back(i);
  load_LE_ = at::zeros(
      {static_cast<int64_t>(moe_layers_.size()), std::max<int64_t>(cfg_.moe.num_experts, 0)},
      at::kLong);
  if (random_init) init_weights(*this, cfg_.init_std, cfg_.seed);
}

at::Tensor CausalLM::output_weight() const {
  return lm_head_ ? lm_head_->weight : backbone_->embed_tokens->weight;
}

static void check_tokens(const at::Tensor& t, const char* name, int64_t V) {
  ZR_CHECK(t.defined() && t.dim() == 2, "CausalLM: ", name, " must be [B,T], got ",
           t.defined() ? t.dim() : -1, " dims");
  ZR_CHECK(t.scalar_type() == at::kLong, "CausalLM: ", name, " must be int64");
  ZR_CHECK(t.size(0) > 0 && t.size(1) > 0, "CausalLM: ", name, " is empty");
  if (t.device().is_cpu()) {
    int64_t lo = t.min().item<int64_t>(), hi = t.max().item<int64_t>();
    ZR_CHECK(lo >= 0 && hi < V, "CausalLM: ", name, " holds ids outside [0, ", V, "): min ", lo,
             ", max ", hi);
  }
}

at::Tensor CausalLM::run_backbone(const at::Tensor& tokens_BT, const ForwardOptions& fo,
                                  at::Tensor* aux_loss) {
  check_tokens(tokens_BT, "tokens_BT", cfg_.vocab_size);
  int64_t B = tokens_BT.size(0), T = tokens_BT.size(1);
  at::Tensor tokens = tokens_BT.to(output_weight().device());
  at::Tensor valid_N;
  if (fo.valid_BT.defined()) {
    ZR_CHECK(fo.valid_BT.sizes() == tokens_BT.sizes(),
             "CausalLM: valid_BT must have the shape of tokens_BT");
    valid_N = fo.valid_BT.to(tokens.device()).to(at::kBool).reshape({B * T});
  }
  std::vector<MoeCall> calls(moe_layers_.size());
  ZR_CHECK(fo.replay_routing.empty() || fo.replay_routing.size() == calls.size(),
           "CausalLM: replay_routing has ", fo.replay_routing.size(), " layers, the model has ",
           calls.size(), " MoE layers");
  for (size_t m = 0; m < fo.replay_routing.size(); ++m)
    calls[m].replay_idx_NK = fo.replay_routing[m].to(tokens.device());
  for (auto& c : calls) {
    c.valid_N = valid_N;
    c.batch = B;
    c.want_counts = fo.record_expert_load;
    c.want_routing = fo.record_routing;
    c.want_aux = aux_loss != nullptr && cfg_.moe.seq_aux_loss_alpha > 0;
  }
  at::Tensor h = backbone_->forward_full(tokens, calls, fo.activation_checkpointing);
  if (fo.record_routing) {
    last_routing_.clear();
    for (auto& c : calls) last_routing_.push_back(c.topk_idx_NK);
  }
  if (fo.record_expert_load)
    for (size_t m = 0; m < calls.size(); ++m) load_LE_[m].add_(calls[m].counts_E.to(at::kCPU));
  if (aux_loss) {
    at::Tensor total =
        at::zeros({}, h.options().dtype(h.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
    for (auto& c : calls)
      if (c.aux_loss.defined()) total = total + c.aux_loss.to(total.scalar_type());
    *aux_loss = total;
  }
  return h;
}

at::Tensor CausalLM::hidden_states(const at::Tensor& tokens_BT, const ForwardOptions& fo,
                                   at::Tensor* aux_loss) {
  return run_backbone(tokens_BT, fo, aux_loss);
}

LogprobOutput CausalLM::logprobs(const at::Tensor& tokens_BT, const at::Tensor& targets_BT,
                                 const kernels::LogprobOptions& lo, const ForwardOptions& fo) {
  check_tokens(targets_BT, "targets_BT", cfg_.vocab_size);
  ZR_CHECK(targets_BT.sizes() == tokens_BT.sizes(), "CausalLM::logprobs: targets_BT ",
           targets_BT.sizes(), " must match tokens_BT ", tokens_BT.sizes());
  LogprobOutput out;
  at::Tensor h = run_backbone(tokens_BT, fo, &out.aux_loss);
  int64_t B = h.size(0), T = h.size(1);
  at::Tensor W = output_weight();
  if (W.scalar_type() != h.scalar_type()) W = W.to(h.scalar_type());
  kernels::LogprobResult r = kernels::chosen_logprob(
      h.reshape({B * T, h.size(2)}), W, targets_BT.to(h.device()).reshape({B * T}), lo);
  out.logp_BT = r.logp_N.view({B, T});
  if (r.entropy_N.defined()) out.entropy_BT = r.entropy_N.view({B, T});
  return out;
}

at::Tensor CausalLM::logits(const at::Tensor& tokens_BT, const ForwardOptions& fo) {
  at::Tensor h = run_backbone(tokens_BT, fo, nullptr);
  at::Tensor W = output_weight();
  return kernels::row_invariant_linear(
      h, W.scalar_type() == h.scalar_type() ? W : W.to(h.scalar_type()));
}

// ---- KV cache ------------------------------------------------------------------

KvCache CausalLM::make_cache(int64_t num_slots, int64_t max_len, int64_t block_size,
                             int64_t num_blocks, bool scratch_block) const {
  at::Tensor w = backbone_->embed_tokens->weight;
  return KvCache(cfg_, num_slots, max_len, w.options().requires_grad(false), block_size, num_blocks,
                 scratch_block);
}

at::Tensor CausalLM::extend(KvCache& cache, const std::vector<int64_t>& slots,
                            const std::vector<std::vector<int64_t>>& tokens,
                            const ForwardOptions& fo, const at::Tensor& tokens_dev_N) {
  // Inference mode, not just no-grad: it also skips the autograd and
  // view/version-tracking dispatch of every op, most of a small decode
  // step's cost.  The outputs are inference tensors (readable anywhere, not
  // for autograd or in-place use outside inference mode).
  c10::InferenceMode inference;
  ZR_CHECK(!slots.empty(), "CausalLM: no slots given");
  ZR_CHECK(cache.num_layers() == cfg_.num_layers &&
               cache.is_mla() == (cfg_.attn.kind == AttentionConfig::Kind::kMla),
           "CausalLM: the KV cache was made for a different model");
  ZR_CHECK(!fo.valid_BT.defined() && !fo.record_expert_load && fo.replay_routing.empty(),
           "CausalLM: prefill/decode take ForwardOptions::record_routing only (every new token is "
           "valid; expert load and routing replay belong to the trainer's forward)");
  const int64_t S = static_cast<int64_t>(slots.size());
  std::vector<int64_t> n(slots.size());
  for (int64_t i = 0; i < S; ++i) n[i] = static_cast<int64_t>(tokens[i].size());
  if (!tokens_dev_N.defined())
    for (int64_t i = 0; i < S; ++i)
      for (int64_t id : tokens[i])
        ZR_CHECK(id >= 0 && id < cfg_.vocab_size, "CausalLM: token id ", id, " for slot ", slots[i],
                 " is outside [0, ", cfg_.vocab_size, ")");
  cache.check_append(slots, n);
  cache.reserve_append(slots, n);

  // Attention batch (attention.h): one row per listed slot, in call order,
  // reading its blocks through the block table.
  const int64_t Q = *std::max_element(n.begin(), n.end());
  const int64_t bs = cache.block_size();
  int64_t L = 0;
  for (int64_t i = 0; i < S; ++i) L = std::max(L, cache.length(slots[i]) + n[i]);
  const int64_t M = (L + bs - 1) / bs;
  std::vector<int64_t> tok_N, write_N, pos_N, flat_N, last_S,
      blocks_BM(static_cast<size_t>(S * M), 0), qpos_BQ(static_cast<size_t>(S * Q), 0);
  bool identity = S * Q == std::accumulate(n.begin(), n.end(), int64_t{0});
  for (int64_t i = 0; i < S; ++i) {
    const int64_t len = cache.length(slots[i]);
    const std::vector<int64_t>& table = cache.block_table(slots[i]);
    const int64_t used = std::min<int64_t>(M, static_cast<int64_t>(table.size()));
    std::copy(table.begin(), table.begin() + used, blocks_BM.begin() + i * M);
    for (int64_t t = 0; t < Q; ++t) qpos_BQ[static_cast<size_t>(i * Q + t)] = len + t;
    for (int64_t t = 0; t < n[i]; ++t) {
      const int64_t pos = len + t;
      identity = identity && i * Q + t == static_cast<int64_t>(tok_N.size());
      flat_N.push_back(i * Q + t);
      tok_N.push_back(tokens[i][t]);
      write_N.push_back(table[static_cast<size_t>(pos / bs)] * bs + pos % bs);
      pos_N.push_back(pos);
    }
    last_S.push_back(static_cast<int64_t>(tok_N.size()) - 1);
  }
  const at::Device dev = backbone_->embed_tokens->weight.device();
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(dev);
  auto to_dev = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(dev); };
  CacheStep st;
  st.num_rows = S;
  st.q_len = Q;
  st.kv_len = L;
  st.blocks_per_row = M;
  st.write_N = to_dev(write_N);
  st.blocks_BM = to_dev(blocks_BM);
  if (!identity) st.flat_N = to_dev(flat_N);
  st.masked_BQL = at::arange(L, long_opts).view({1, 1, L}) > to_dev(qpos_BQ).view({S, Q, 1});
  const at::ScalarType dt = backbone_->embed_tokens->weight.scalar_type();
  std::tie(st.cos_N, st.sin_N) = backbone_->rope().tables(to_dev(pos_N), dt);
  if (S > 1 && Q > 1) {
    // A batched prefill: attention per slot at its own shapes (CacheStep::per_row),
    // each step as a call for that slot alone builds it above.
    st.per_row.reserve(static_cast<size_t>(S));
    for (int64_t i = 0; i < S; ++i) {
      const int64_t len = cache.length(slots[i]), Li = len + n[i], Mi = (Li + bs - 1) / bs;
      const std::vector<int64_t>& table = cache.block_table(slots[i]);
      std::vector<int64_t> blocks(static_cast<size_t>(Mi), 0), qpos(static_cast<size_t>(n[i]));
      std::copy(table.begin(), table.begin() + std::min<int64_t>(Mi, table.size()), blocks.begin());
      for (int64_t t = 0; t < n[i]; ++t) qpos[static_cast<size_t>(t)] = len + t;
      CacheStep r;
      r.num_rows = 1;
      r.q_len = n[i];
      r.kv_len = Li;
      r.blocks_per_row = Mi;
      r.blocks_BM = to_dev(blocks);
      r.masked_BQL = at::arange(Li, long_opts).view({1, 1, Li}) > to_dev(qpos).view({1, n[i], 1});
      st.per_row.push_back(std::move(r));
    }
  }
  const DecodeAttention mode = decode_attention();
  // CUDA takes the in-place kernel only when asked (kPagedCuda): it has not
  // run on a GPU yet, so the gather path stays CUDA's default.
  if (Q == 1 && mode != DecodeAttention::kGather && cache.a(0).scalar_type() == dt &&
      (dev.is_cpu() || mode == DecodeAttention::kPagedCuda) && paged_decode_available(dev, dt)) {
    std::vector<const std::vector<int64_t>*> tables;
    std::vector<int64_t> kv_len;
    for (int64_t i = 0; i < S; ++i) {
      tables.push_back(&cache.block_table(slots[i]));
      kv_len.push_back(cache.length(slots[i]) + 1);
    }
    auto plan = PagedDecodePlan::make(tables, kv_len, bs, mode != DecodeAttention::kPagedNoSharing);
    if (dev.is_cuda()) plan->upload_runs(dev);
    st.paged = std::move(plan);
  }

  std::vector<MoeCall> calls(moe_layers_.size());
  for (auto& c : calls) c.want_routing = fo.record_routing;
  const at::Tensor h_N = backbone_->forward_cached(
      tokens_dev_N.defined() ? tokens_dev_N : to_dev(tok_N), st, cache, calls);
  cache.advance(slots, n);
  if (fo.record_routing) {
    last_routing_.clear();
    for (auto& c : calls) last_routing_.push_back(c.topk_idx_NK);
  }
  const bool one_each = static_cast<int64_t>(tok_N.size()) == S;
  const at::Tensor h_S = one_each ? h_N : h_N.index_select(0, to_dev(last_S));
  const at::ScalarType acc = dt == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor W = output_weight();
  return kernels::row_invariant_linear(h_S.scalar_type() == acc ? h_S : h_S.to(acc),
                                       W.scalar_type() == acc ? W : W.to(acc));
}

at::Tensor CausalLM::prefill(KvCache& cache, const std::vector<int64_t>& slots,
                             const std::vector<std::vector<int64_t>>& tokens,
                             const ForwardOptions& fo) {
  ZR_CHECK(slots.size() == tokens.size(), "CausalLM::prefill: ", slots.size(), " slots but ",
           tokens.size(), " token lists");
  return extend(cache, slots, tokens, fo);
}

at::Tensor CausalLM::decode(KvCache& cache, const std::vector<int64_t>& slots,
                            const at::Tensor& tokens_S, const ForwardOptions& fo) {
  ZR_CHECK(tokens_S.dim() == 1 && tokens_S.size(0) == static_cast<int64_t>(slots.size()),
           "CausalLM::decode: tokens_S must be [", slots.size(), "], got ", tokens_S.sizes());
  const at::Device dev = backbone_->embed_tokens->weight.device();
  if (!dev.is_cpu() && tokens_S.device() == dev) {
    const std::vector<std::vector<int64_t>> counts(slots.size(), std::vector<int64_t>{0});
    return extend(cache, slots, counts, fo, tokens_S.to(at::kLong));
  }
  at::Tensor t = tokens_S.to(at::kCPU).to(at::kLong).contiguous();
  std::vector<std::vector<int64_t>> lists(slots.size());
  const int64_t* p = t.data_ptr<int64_t>();
  for (size_t i = 0; i < slots.size(); ++i) lists[i] = {p[i]};
  return extend(cache, slots, lists, fo);
}

std::pair<at::Tensor, at::Tensor> CausalLM::rope_tables(int64_t n) const {
  c10::InferenceMode inference;
  const at::Tensor& w = backbone_->embed_tokens->weight;
  return backbone_->rope().tables(at::arange(n, w.options().dtype(at::kLong)), w.scalar_type());
}

at::Tensor CausalLM::decode_static(KvCache& cache, const StaticDecodeInputs& in,
                                   const ForwardOptions& fo) {
  c10::InferenceMode inference;
  ZR_CHECK(cache.num_layers() == cfg_.num_layers &&
               cache.is_mla() == (cfg_.attn.kind == AttentionConfig::Kind::kMla),
           "CausalLM: the KV cache was made for a different model");
  const int64_t R = in.tokens_R.size(0), M = in.max_blocks, L = M * cache.block_size();
  ZR_CHECK(R >= 1 && M >= 1 && in.pos_R.size(0) == R && in.write_R.size(0) == R &&
               in.blocks_RM.size(0) == R * M && in.cos_PH.size(0) >= L,
           "CausalLM::decode_static: inputs of mismatched sizes (", R, " rows, ", M, " blocks)");
  CacheStep st;
  st.num_rows = R;
  st.q_len = 1;
  st.kv_len = L;
  st.blocks_per_row = M;
  st.write_N = in.write_R;
  st.blocks_BM = in.blocks_RM;
  st.masked_BQL = at::arange(L, in.pos_R.options()).view({1, 1, L}) > in.pos_R.view({R, 1, 1});
  st.cos_N = in.cos_PH.index_select(0, in.pos_R);
  st.sin_N = in.sin_PH.index_select(0, in.pos_R);
  std::vector<MoeCall> calls(moe_layers_.size());
  for (auto& c : calls) c.want_routing = fo.record_routing;
  const at::Tensor h_R = backbone_->forward_cached(in.tokens_R, st, cache, calls);
  if (fo.record_routing) {
    last_routing_.clear();
    for (auto& c : calls) last_routing_.push_back(c.topk_idx_NK);
  }
  const at::ScalarType acc = h_R.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor W = output_weight();
  return kernels::row_invariant_linear(h_R.scalar_type() == acc ? h_R : h_R.to(acc),
                                       W.scalar_type() == acc ? W : W.to(acc));
}

// ---- expert load -----------------------------------------------------------------

at::Tensor CausalLM::expert_load_LE() const { return load_LE_.clone(); }

void CausalLM::reset_expert_load() { load_LE_.zero_(); }

void CausalLM::update_balance_bias(const at::Tensor& load_LE) {
  update_balance_bias(load_LE, cfg_.moe.balance_bias_gamma);
}

void CausalLM::update_balance_bias(const at::Tensor& load_LE, double gamma) {
  int64_t M = static_cast<int64_t>(moe_layers_.size());
  ZR_CHECK(load_LE.dim() == 2 && load_LE.size(0) == M && load_LE.size(1) == cfg_.moe.num_experts,
           "update_balance_bias: load must be [", M, ", ", cfg_.moe.num_experts, "], got ",
           load_LE.sizes());
  for (int64_t m = 0; m < M; ++m)
    backbone_->layers[moe_layers_[m]]->moe->update_bias(load_LE[m], gamma);
}

// ---- parallel plans --------------------------------------------------------------

MoeLayer& CausalLM::moe_layer(size_t m) {
  ZR_CHECK(m < moe_layers_.size(), "CausalLM: MoE layer ", m, " of ", moe_layers_.size());
  return *backbone_->layers[moe_layers_[m]]->moe;
}

void CausalLM::replace_moe_layer(size_t m, std::shared_ptr<MoeLayer> layer) {
  ZR_CHECK(m < moe_layers_.size(), "CausalLM: MoE layer ", m, " of ", moe_layers_.size());
  backbone_->layers[moe_layers_[m]]->set_moe(std::move(layer));
}

void CausalLM::forward_idle() {
  if (!grid_) return;
  c10::InferenceMode inference;
  const at::Tensor none_ND =
      at::empty({0, cfg_.hidden_size}, backbone_->embed_tokens->weight.options());
  for (size_t m = 0; m < moe_layers_.size(); ++m) {
    MoeCall call;
    moe_layer(m).forward(none_ND, call);
  }
}

// ---- weights -------------------------------------------------------------------------

std::vector<std::pair<std::string, at::Tensor>> CausalLM::named_weights() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : named_buffers(true)) out.emplace_back(b.key(), b.value());
  return out;
}

ParamReport CausalLM::param_report() const {
  ParamReport r;
  int64_t E = cfg_.moe.num_experts, K = cfg_.moe.top_k;
  int64_t inactive = 0;
  for (const auto& p : named_parameters(true)) {
    const std::string& name = p.key();
    int64_t n = p.value().numel();
    r.total += n;
    if (name == "model.embed_tokens.weight" || name == "lm_head.weight") r.embedding += n;
    if (name.find(".mlp.experts.") != std::string::npos) {
      r.routed_experts += n;
      inactive += n / E * (E - K);
    }
  }
  r.active_per_token = r.total - inactive;
  return r;
}

std::string ParamReport::to_string() const {
  auto fmt = [](int64_t n) {
    std::ostringstream os;
    os.precision(3);
    if (n >= 1000000000)
      os << n / 1e9 << "B";
    else if (n >= 1000000)
      os << n / 1e6 << "M";
    else if (n >= 1000)
      os << n / 1e3 << "K";
    else
      os << n;
    return os.str();
  };
  std::ostringstream os;
  os << "parameters: " << total << " total (" << fmt(total) << "), " << active_per_token
     << " active per token (" << fmt(active_per_token) << "); embeddings " << fmt(embedding)
     << ", routed experts " << fmt(routed_experts);
  return os.str();
}

}  // namespace zerorl::model
