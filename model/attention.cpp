#include "model/attention.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "kernels/batch_invariant.h"
#include "model/paged_attention.h"

namespace zerorl::model {

namespace {

// Causal attention on [B,H,T,*] tensors through at::scaled_dot_product_attention,
// so no [B,H,T,T] score tensor exists: the fused flash kernel on the CPU
// (blocked, fp32 accumulation, saves only the [B,H,T] log-sum-exp for
// backward) and flash / memory-efficient kernels on CUDA.
//   * k/v may have fewer heads than q (GQA): SDPA's enable_gqa where the
//     fused kernel takes it (the CPU kernel; CUDA flash, half/bf16);
//     otherwise (CUDA fp32, where only the memory-efficient kernel applies
//     and it refuses enable_gqa) the k/v heads are repeated first, as HF's
//     repeat_kv does: [B,H,T,Dh] copies, still no T x T.
//   * q/k and v may differ in head size (MLA: Dn+Dr vs Dv).  Flash kernels
//     need one size, so the narrower side is zero-padded: padding v adds
//     zero output columns that are cut off; padding q and k adds zero terms
//     to each score (the scale is passed explicitly, so it is unchanged).
// The causal mask is the only mask: padding sits on the right of each row,
// and a causal query never sees a key after it.
at::Tensor causal_attention(at::Tensor q_BHTd, at::Tensor k_BhTd, at::Tensor v_BhTe, double scale) {
  const int64_t H = q_BHTd.size(1), Hkv = k_BhTd.size(1);
  const int64_t dq = q_BHTd.size(-1), dv = v_BhTe.size(-1);
  if (dv < dq) v_BhTe = at::constant_pad_nd(v_BhTe, {0, dq - dv});
  if (dq < dv) {
    q_BHTd = at::constant_pad_nd(q_BHTd, {0, dv - dq});
    k_BhTd = at::constant_pad_nd(k_BhTd, {0, dv - dq});
  }
  bool gqa = Hkv != H;
  const at::ScalarType dt = q_BHTd.scalar_type();
  if (gqa && q_BHTd.is_cuda() && dt != at::kHalf && dt != at::kBFloat16) {
    const int64_t B = q_BHTd.size(0), T = k_BhTd.size(2), g = H / Hkv;
    auto repeat = [&](const at::Tensor& x) {
      return x.unsqueeze(2).expand({B, Hkv, g, T, x.size(-1)}).reshape({B, H, T, x.size(-1)});
    };
    k_BhTd = repeat(k_BhTd);
    v_BhTe = repeat(v_BhTe);
    gqa = false;
  }
  at::Tensor o = at::scaled_dot_product_attention(q_BHTd, k_BhTd, v_BhTe, /*attn_mask=*/{},
                                                  /*dropout_p=*/0.0, /*is_causal=*/true, scale,
                                                  /*enable_gqa=*/gqa);
  return o.size(-1) == dv ? o : o.narrow(-1, 0, dv);
}

// softmax over the last dim of scores viewed as mask_shape, with masked
// positions excluded; fp32 (fp64 for fp64 models) as HF's eager path does.
at::Tensor masked_softmax_(at::Tensor scores, const at::Tensor& masked,
                           at::IntArrayRef view_shape) {
  scores.view(view_shape).masked_fill_(masked, -std::numeric_limits<double>::infinity());
  const at::ScalarType dt = scores.scalar_type();
  return at::softmax(scores, -1, dt == at::kDouble ? at::kDouble : at::kFloat).to(dt);
}

// Rows of x_N... placed into a zero-padded [B*Q, ...] tensor (x_N itself
// when the layout is the identity).
at::Tensor pad_rows(const at::Tensor& x_N, const CacheStep& st) {
  if (!st.flat_N.defined()) return x_N;
  std::vector<int64_t> shape(x_N.sizes().begin(), x_N.sizes().end());
  shape[0] = st.num_rows * st.q_len;
  at::Tensor out = at::zeros(shape, x_N.options());
  out.index_copy_(0, st.flat_N, x_N);
  return out;
}

// The new tokens' rows of a padded [B*Q, ...] tensor.
at::Tensor unpad_rows(const at::Tensor& x_BQ, const CacheStep& st) {
  return st.flat_N.defined() ? x_BQ.index_select(0, st.flat_N) : x_BQ;
}

// The attention batch's positions 0..L-1 of one layer's pool, gathered
// block by block: MLA pool [NB,bs,C] -> [B, L, C]; GQA pool [Hkv,NB,bs,Dh]
// -> [Hkv*B, L, Dh] (kv head major).
at::Tensor gather_blocks(const at::Tensor& pool, const CacheStep& st, at::ScalarType dtype) {
  const int64_t B = st.num_rows, M = st.blocks_per_row;
  at::Tensor t;
  if (pool.dim() == 3) {
    const int64_t bs = pool.size(1);
    t = pool.index_select(0, st.blocks_BM).view({B, M * bs, pool.size(2)});
  } else {
    const int64_t Hkv = pool.size(0), bs = pool.size(2);
    t = pool.index_select(1, st.blocks_BM).view({Hkv * B, M * bs, pool.size(3)});
  }
  t = t.narrow(1, 0, st.kv_len);
  return t.scalar_type() == dtype ? t : t.to(dtype);
}

// attend(q rows, step) over the attention batch, or once per slot of a
// per-row step (CacheStep::per_row), each slot's query rows in a fresh
// buffer (so its GEMMs see the operands a forward of its own would: same
// shapes, 64-byte aligned) and the outputs stacked in call order.
template <class F>
at::Tensor per_slot(const at::Tensor& q_N, const CacheStep& st, F&& attend) {
  if (st.per_row.empty()) return attend(q_N, st);
  std::vector<at::Tensor> outs;
  outs.reserve(st.per_row.size());
  int64_t row = 0;
  for (const CacheStep& r : st.per_row) {
    outs.push_back(attend(q_N.narrow(0, row, r.q_len).clone(), r));
    row += r.q_len;
  }
  return at::cat(outs, 0);
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
  o_proj_ = register_module("o_proj", std::make_shared<Linear>(H_ * Dh_, D, cfg.attn.o_bias));
  qk_norm_ = cfg.attn.qk_norm;
  if (qk_norm_ != AttentionConfig::QkNorm::kNone) {
    const bool per_head = qk_norm_ == AttentionConfig::QkNorm::kPerHead;
    q_norm_ = register_module(
        "q_norm", std::make_shared<RMSNorm>(per_head ? Dh_ : H_ * Dh_, cfg.rms_norm_eps));
    k_norm_ = register_module(
        "k_norm", std::make_shared<RMSNorm>(per_head ? Dh_ : Hkv_ * Dh_, cfg.rms_norm_eps));
  }
  scale_ = 1.0 / std::sqrt(static_cast<double>(Dh_)) * cfg.rope.softmax_scale_multiplier();
}

at::Tensor GqaAttention::project(const Linear& proj, const RMSNorm* norm, const at::Tensor& x,
                                 int64_t heads) const {
  at::Tensor y = proj.forward(x);
  if (norm && qk_norm_ == AttentionConfig::QkNorm::kFullWidth) y = norm->forward(y);
  auto shape = x.sizes().vec();
  shape.back() = heads;
  shape.push_back(Dh_);
  y = y.view(shape);
  if (norm && qk_norm_ == AttentionConfig::QkNorm::kPerHead) y = norm->forward(y);
  return y;
}

at::Tensor GqaAttention::forward_full(const at::Tensor& x, const at::Tensor& cos,
                                      const at::Tensor& sin) {
  int64_t B = x.size(0), T = x.size(1);
  at::Tensor q = project(*q_proj_, q_norm_.get(), x, H_);  // [B,T,H,Dh]
  at::Tensor k = project(*k_proj_, k_norm_.get(), x, Hkv_);
  at::Tensor v = v_proj_->forward(x).view({B, T, Hkv_, Dh_});
  at::Tensor c = cos.unsqueeze(1), s = sin.unsqueeze(1);  // [T,1,R/2]
  q = rope_->apply(q, c, s).transpose(1, 2);
  k = rope_->apply(k, c, s).transpose(1, 2);
  at::Tensor o = causal_attention(q, k, v.transpose(1, 2), scale_);
  return o_proj_->forward(o.transpose(1, 2).reshape({B, T, H_ * Dh_}));
}

at::Tensor GqaAttention::forward_cached(const at::Tensor& x, const CacheStep& st, KvCache& cache,
                                        int64_t layer) {
  const int64_t N = x.size(0), g = H_ / Hkv_;
  at::Tensor q = project(*q_proj_, q_norm_.get(), x, H_);  // [N,H,Dh]
  at::Tensor k = project(*k_proj_, k_norm_.get(), x, Hkv_);
  at::Tensor v = v_proj_->forward(x).view({N, Hkv_, Dh_});
  at::Tensor c = st.cos_N.unsqueeze(1), s = st.sin_N.unsqueeze(1);
  q = rope_->apply(q, c, s) * scale_;
  k = rope_->apply(k, c, s);
  using at::indexing::Slice;
  at::Tensor& k_pool = cache.a(layer);  // [Hkv,NB,bs,Dh]
  at::Tensor& v_pool = cache.b(layer);
  const int64_t rows = k_pool.size(1) * k_pool.size(2);
  k_pool.view({Hkv_, rows, Dh_})
      .index_put_({Slice(), st.write_N}, k.transpose(0, 1).to(k_pool.scalar_type()));
  v_pool.view({Hkv_, rows, Dh_})
      .index_put_({Slice(), st.write_N}, v.transpose(0, 1).to(v_pool.scalar_type()));
  if (st.paged) {  // in place: query heads h*g .. h*g+g-1 against kv head h's plane
    const at::Tensor q_NHD = q.contiguous().view({N, H_, Dh_});
    at::Tensor o_NHD = at::empty({N, H_, Dh_}, q.options());
    paged_decode_attention_heads(q_NHD, k_pool.view({Hkv_, rows, Dh_}),
                                 v_pool.view({Hkv_, rows, Dh_}), *st.paged, o_NHD);
    return o_proj_->forward(o_NHD.view({N, H_ * Dh_}));
  }
  // One matrix per (kv head, row): [Hkv*B, L, Dh]; heads i*g .. i*g+g-1 share kv head i (HF
  // repeat_kv), so their g*Q query rows form one GEMM against it.
  const auto attend = [&](const at::Tensor& q_n, const CacheStep& s) {
    const int64_t B = s.num_rows, Q = s.q_len, L = s.kv_len;
    at::Tensor K = gather_blocks(k_pool, s, x.scalar_type());
    at::Tensor V = gather_blocks(v_pool, s, x.scalar_type());
    at::Tensor q_B = pad_rows(q_n, s)
                         .view({B, Q, Hkv_, g, Dh_})
                         .permute({2, 0, 1, 3, 4})
                         .reshape({Hkv_ * B, Q * g, Dh_});
    at::Tensor p = masked_softmax_(at::bmm(q_B, K.transpose(1, 2)),
                                   s.masked_BQL.view({1, B, Q, 1, L}), {Hkv_, B, Q, g, L});
    at::Tensor o = at::bmm(p, V)
                       .view({Hkv_, B, Q, g, Dh_})
                       .permute({1, 2, 0, 3, 4})
                       .reshape({B * Q, H_ * Dh_});
    return unpad_rows(o, s);
  };
  return o_proj_->forward(per_slot(q, st, attend));
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
  const int64_t N = x.size(0);
  at::Tensor q = query(x);  // [N,H,Dn+Dr]
  at::Tensor q_nope = q.narrow(-1, 0, Dn_);
  at::Tensor ckv = kv_a_proj_->forward(x);  // [N,R+Dr]
  at::Tensor c = kv_a_norm_->forward(ckv.narrow(-1, 0, R_));
  // The H query heads and the shared key turn by the same angles: one RoPE
  // call over [N, H+1, Dr] (a small step is dominated by per-op overhead).
  at::Tensor rot =
      rope_->apply(at::cat({q.narrow(-1, Dn_, Dr_), ckv.narrow(-1, R_, Dr_).unsqueeze(1)}, 1),
                   st.cos_N.unsqueeze(1), st.sin_N.unsqueeze(1));
  at::Tensor q_rot = rot.narrow(1, 0, H_), kr = rot.select(1, H_);
  at::Tensor& pool = cache.a(layer);  // [NB,bs,R+Dr]: latent ++ rotary key
  pool.view({pool.size(0) * pool.size(1), R_ + Dr_})
      .index_copy_(0, st.write_N, at::cat({c, kr}, -1).to(pool.scalar_type()));

  // Absorbed form: score = q_nope W_uk . c + q_rot . k_rope, one GEMM against
  // the stored [c, k_rope]; the output stays in latent space until W_uv.
  at::Tensor W = kv_b_proj_->weight.to(x.scalar_type()).view({H_, Dn_ + Dv_, R_});
  at::Tensor W_uk = W.narrow(1, 0, Dn_), W_uv = W.narrow(1, Dn_, Dv_);
  // Per-head GEMMs over the N rows, row-invariant (kernels/batch_invariant.h).
  const auto absorb_k = [&](const at::Tensor& t) {
    return at::bmm(t.transpose(0, 1), W_uk).transpose(0, 1);
  };
  const auto absorb_v = [&](const at::Tensor& t) {  // [N,H,R] -> [N,H,Dv]
    return at::bmm(t.transpose(0, 1), W_uv.transpose(1, 2)).transpose(0, 1);
  };
  at::Tensor q_lat = kernels::with_min_rows(q_nope, absorb_k);  // [N,H,R]
  at::Tensor qq = at::cat({q_lat, q_rot}, -1).mul_(scale_);     // [N,H,R+Dr]
  if (st.paged) {  // in place: the latent rows are the keys, their first R columns the values
    const at::Tensor rows_PC = pool.view({pool.size(0) * pool.size(1), R_ + Dr_});
    at::Tensor o_lat = at::empty({N, H_, R_}, qq.options());
    paged_decode_attention_heads(qq, rows_PC.unsqueeze(0), rows_PC.narrow(1, 0, R_).unsqueeze(0),
                                 *st.paged, o_lat);
    at::Tensor o = kernels::with_min_rows(o_lat, absorb_v);  // [N,H,Dv]
    return o_proj_->forward(o.reshape({N, H_ * Dv_}));
  }
  const auto attend = [&](const at::Tensor& qq_n, const CacheStep& s) {
    const int64_t B = s.num_rows, Q = s.q_len, L = s.kv_len;
    at::Tensor CK = gather_blocks(pool, s, x.scalar_type());  // [B,L,R+Dr]
    // Query rows of one slot are (q, h) pairs: [B, Q*H, R+Dr].
    at::Tensor q_B = pad_rows(qq_n, s).view({B, Q * H_, R_ + Dr_});
    at::Tensor p = masked_softmax_(at::bmm(q_B, CK.transpose(1, 2)),
                                   s.masked_BQL.view({B, Q, 1, L}), {B, Q, H_, L});
    at::Tensor o_lat = at::bmm(p, CK.narrow(-1, 0, R_));  // [B,Q*H,R]
    return unpad_rows(o_lat.view({B * Q, H_, R_}), s);    // [n,H,R]
  };
  at::Tensor o_lat = per_slot(qq, st, attend);             // [N,H,R]
  at::Tensor o = kernels::with_min_rows(o_lat, absorb_v);  // [N,H,Dv]
  return o_proj_->forward(o.reshape({N, H_ * Dv_}));
}

}  // namespace zerorl::model
