#include "model/attention.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace zerorl::model {

namespace {

// Causal softmax attention on [B,H,T,*] tensors; softmax in fp32 as HF's
// eager path does.
at::Tensor causal_attention(const at::Tensor& q_BHTd, const at::Tensor& k_BHTd,
                            const at::Tensor& v_BHTd, double scale) {
  int64_t T = q_BHTd.size(2);
  at::Tensor scores = at::matmul(q_BHTd, k_BHTd.transpose(2, 3)) * scale;
  at::Tensor future =
      at::ones({T, T}, at::TensorOptions().dtype(at::kBool).device(q_BHTd.device())).triu(1);
  scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
  at::Tensor p = at::softmax(scores, -1, at::kFloat).to(q_BHTd.scalar_type());
  return at::matmul(p, v_BHTd);
}

at::Tensor masked_softmax(const at::Tensor& scores, const at::Tensor& allowed) {
  at::Tensor s =
      scores.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  return at::softmax(s, -1, at::kFloat).to(scores.scalar_type());
}

// Rows of x_N... placed into a zero-padded [S*Q, ...] tensor viewed [S, Q, ...].
at::Tensor pad_rows(const at::Tensor& x_N, const CacheStep& st) {
  std::vector<int64_t> shape(x_N.sizes().begin(), x_N.sizes().end());
  shape[0] = st.num_slots * st.q_len;
  at::Tensor out = at::zeros(shape, x_N.options());
  out.index_copy_(0, st.flat_N, x_N);
  shape[0] = st.q_len;
  shape.insert(shape.begin(), st.num_slots);
  return out.view(shape);
}

}  // namespace

// ---- GQA / MHA ----------------------------------------------------------------

GqaAttention::GqaAttention(const ModelConfig& cfg, std::shared_ptr<const Rope> rope)
    : H_(cfg.attn.num_heads),
      Hkv_(cfg.attn.num_kv_heads),
      Dh_(cfg.attn.head_dim),
      rope_(std::move(rope)) {
  int64_t D = cfg.hidden_size;
  bool b = cfg.attn.qkv_bias;
  q_proj_ = register_module("q_proj", std::make_shared<Linear>(D, H_ * Dh_, b));
  k_proj_ = register_module("k_proj", std::make_shared<Linear>(D, Hkv_ * Dh_, b));
  v_proj_ = register_module("v_proj", std::make_shared<Linear>(D, Hkv_ * Dh_, b));
  o_proj_ = register_module("o_proj", std::make_shared<Linear>(H_ * Dh_, D, false));
  scale_ = 1.0 / std::sqrt(static_cast<double>(Dh_)) * cfg.rope.softmax_scale_multiplier();
}

at::Tensor GqaAttention::forward_full(const at::Tensor& x, const at::Tensor& cos,
                                      const at::Tensor& sin) {
  int64_t B = x.size(0), T = x.size(1);
  at::Tensor q = q_proj_->forward(x).view({B, T, H_, Dh_});
  at::Tensor k = k_proj_->forward(x).view({B, T, Hkv_, Dh_});
  at::Tensor v = v_proj_->forward(x).view({B, T, Hkv_, Dh_});
  at::Tensor c = cos.unsqueeze(1), s = sin.unsqueeze(1);  // [T,1,R/2]
  q = rope_->apply(q, c, s).transpose(1, 2);
  k = rope_->apply(k, c, s).transpose(1, 2);
  v = v.transpose(1, 2);
  int64_t g = H_ / Hkv_;
  if (g > 1) {
    k = k.unsqueeze(2).expand({B, Hkv_, g, T, Dh_}).reshape({B, H_, T, Dh_});
    v = v.unsqueeze(2).expand({B, Hkv_, g, T, Dh_}).reshape({B, H_, T, Dh_});
  }
  at::Tensor o = causal_attention(q, k, v, scale_);
  return o_proj_->forward(o.transpose(1, 2).reshape({B, T, H_ * Dh_}));
}

at::Tensor GqaAttention::forward_cached(const at::Tensor& x, const CacheStep& st, KvCache& cache,
                                        int64_t layer) {
  int64_t N = x.size(0), S = st.num_slots, Q = st.q_len, L = st.kv_len;
  at::Tensor q = q_proj_->forward(x).view({N, H_, Dh_});
  at::Tensor k = k_proj_->forward(x).view({N, Hkv_, Dh_});
  at::Tensor v = v_proj_->forward(x).view({N, Hkv_, Dh_});
  at::Tensor c = st.cos_N.unsqueeze(1), s = st.sin_N.unsqueeze(1);
  q = rope_->apply(q, c, s);
  k = rope_->apply(k, c, s);
  cache.a(layer).index_put_({st.slot_N, st.pos_N}, k.to(cache.a(layer).scalar_type()));
  cache.b(layer).index_put_({st.slot_N, st.pos_N}, v.to(cache.b(layer).scalar_type()));
  at::Tensor K = cache.a(layer).narrow(1, 0, L).index_select(0, st.slots_S).to(x.scalar_type());
  at::Tensor V = cache.b(layer).narrow(1, 0, L).index_select(0, st.slots_S).to(x.scalar_type());
  K = K.permute({0, 2, 1, 3});  // [S,Hkv,L,Dh]
  V = V.permute({0, 2, 1, 3});
  int64_t g = H_ / Hkv_;
  if (g > 1) {
    K = K.unsqueeze(2).expand({S, Hkv_, g, L, Dh_}).reshape({S, H_, L, Dh_});
    V = V.unsqueeze(2).expand({S, Hkv_, g, L, Dh_}).reshape({S, H_, L, Dh_});
  }
  at::Tensor qp = pad_rows(q, st).permute({0, 2, 1, 3});  // [S,H,Q,Dh]
  at::Tensor p = masked_softmax(at::matmul(qp, K.transpose(2, 3)) * scale_, st.allowed_S1QL);
  at::Tensor o = at::matmul(p, V).permute({0, 2, 1, 3}).reshape({S * Q, H_ * Dh_});
  return o_proj_->forward(o.index_select(0, st.flat_N));
}

// ---- MLA ------------------------------------------------------------------------

MlaAttention::MlaAttention(const ModelConfig& cfg, std::shared_ptr<const Rope> rope)
    : H_(cfg.attn.num_heads),
      R_(cfg.attn.kv_lora_rank),
      Dn_(cfg.attn.qk_nope_head_dim),
      Dr_(cfg.attn.qk_rope_head_dim),
      Dv_(cfg.attn.v_head_dim),
      rope_(std::move(rope)) {
  const auto& a = cfg.attn;
  int64_t D = cfg.hidden_size, Dq = Dn_ + Dr_;
  if (a.q_lora_rank > 0) {
    q_a_proj_ =
        register_module("q_a_proj", std::make_shared<Linear>(D, a.q_lora_rank, a.attention_bias));
    // HF builds q_a_layernorm / kv_a_layernorm with the default eps 1e-6.
    q_a_norm_ = register_module("q_a_layernorm", std::make_shared<RMSNorm>(a.q_lora_rank, 1e-6));
    q_b_proj_ =
        register_module("q_b_proj", std::make_shared<Linear>(a.q_lora_rank, H_ * Dq, false));
  } else {
    q_proj_ = register_module("q_proj", std::make_shared<Linear>(D, H_ * Dq, false));
  }
  kv_a_proj_ = register_module("kv_a_proj_with_mqa",
                               std::make_shared<Linear>(D, R_ + Dr_, a.attention_bias));
  kv_a_norm_ = register_module("kv_a_layernorm", std::make_shared<RMSNorm>(R_, 1e-6));
  kv_b_proj_ = register_module("kv_b_proj", std::make_shared<Linear>(R_, H_ * (Dn_ + Dv_), false));
  o_proj_ = register_module("o_proj", std::make_shared<Linear>(H_ * Dv_, D, a.attention_bias));
  scale_ = 1.0 / std::sqrt(static_cast<double>(Dq)) * cfg.rope.softmax_scale_multiplier();
}

at::Tensor MlaAttention::query(const at::Tensor& x) const {
  at::Tensor q =
      q_proj_ ? q_proj_->forward(x) : q_b_proj_->forward(q_a_norm_->forward(q_a_proj_->forward(x)));
  auto shape = x.sizes().vec();
  shape.back() = H_;
  shape.push_back(Dn_ + Dr_);
  return q.view(shape);
}

at::Tensor MlaAttention::forward_full(const at::Tensor& x, const at::Tensor& cos,
                                      const at::Tensor& sin) {
  int64_t B = x.size(0), T = x.size(1);
  at::Tensor q = query(x);  // [B,T,H,Dn+Dr]
  at::Tensor q_pass = q.narrow(-1, 0, Dn_);
  at::Tensor q_rot = rope_->apply(q.narrow(-1, Dn_, Dr_), cos.unsqueeze(1), sin.unsqueeze(1));
  at::Tensor ckv = kv_a_proj_->forward(x);  // [B,T,R+Dr]
  at::Tensor c = kv_a_norm_->forward(ckv.narrow(-1, 0, R_));
  at::Tensor k_rot = rope_->apply(ckv.narrow(-1, R_, Dr_), cos, sin);  // [B,T,Dr]
  at::Tensor kv = kv_b_proj_->forward(c).view({B, T, H_, Dn_ + Dv_});
  at::Tensor k_nope = kv.narrow(-1, 0, Dn_), v = kv.narrow(-1, Dn_, Dv_);
  at::Tensor k = at::cat({k_nope, k_rot.unsqueeze(2).expand({B, T, H_, Dr_})}, -1);
  at::Tensor qq = at::cat({q_pass, q_rot}, -1);
  at::Tensor o = causal_attention(qq.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale_);
  return o_proj_->forward(o.transpose(1, 2).reshape({B, T, H_ * Dv_}));
}

at::Tensor MlaAttention::forward_cached(const at::Tensor& x, const CacheStep& st, KvCache& cache,
                                        int64_t layer) {
  int64_t S = st.num_slots, Q = st.q_len, L = st.kv_len;
  at::Tensor q = query(x);  // [N,H,Dn+Dr]
  at::Tensor q_nope = q.narrow(-1, 0, Dn_);
  at::Tensor q_rot =
      rope_->apply(q.narrow(-1, Dn_, Dr_), st.cos_N.unsqueeze(1), st.sin_N.unsqueeze(1));
  at::Tensor ckv = kv_a_proj_->forward(x);  // [N,R+Dr]
  at::Tensor c = kv_a_norm_->forward(ckv.narrow(-1, 0, R_));
  at::Tensor kr = rope_->apply(ckv.narrow(-1, R_, Dr_), st.cos_N, st.sin_N);
  cache.a(layer).index_put_({st.slot_N, st.pos_N}, c.to(cache.a(layer).scalar_type()));
  cache.b(layer).index_put_({st.slot_N, st.pos_N}, kr.to(cache.b(layer).scalar_type()));
  at::Tensor C =
      cache.a(layer).narrow(1, 0, L).index_select(0, st.slots_S).to(x.scalar_type());  // [S,L,R]
  at::Tensor KR =
      cache.b(layer).narrow(1, 0, L).index_select(0, st.slots_S).to(x.scalar_type());  // [S,L,Dr]

  at::Tensor W = kv_b_proj_->weight.to(x.scalar_type()).view({H_, Dn_ + Dv_, R_});
  at::Tensor W_uk = W.narrow(1, 0, Dn_), W_uv = W.narrow(1, Dn_, Dv_);
  at::Tensor q_lat = at::matmul(q_nope.transpose(0, 1), W_uk).transpose(0, 1);  // [N,H,R]
  at::Tensor ql = pad_rows(q_lat, st).permute({0, 2, 1, 3});                    // [S,H,Q,R]
  at::Tensor qr = pad_rows(q_rot, st).permute({0, 2, 1, 3});                    // [S,H,Q,Dr]
  at::Tensor scores = at::matmul(ql, C.transpose(1, 2).unsqueeze(1)) +
                      at::matmul(qr, KR.transpose(1, 2).unsqueeze(1));
  at::Tensor p = masked_softmax(scores * scale_, st.allowed_S1QL);
  at::Tensor o_lat = at::matmul(p, C.unsqueeze(1));  // [S,H,Q,R]
  o_lat =
      o_lat.permute({0, 2, 1, 3}).reshape({S * Q, H_, R_}).index_select(0, st.flat_N);  // [N,H,R]
  at::Tensor o =
      at::matmul(o_lat.transpose(0, 1), W_uv.transpose(1, 2)).transpose(0, 1);  // [N,H,Dv]
  return o_proj_->forward(o.reshape({x.size(0), H_ * Dv_}));
}

}  // namespace zerorl::model
