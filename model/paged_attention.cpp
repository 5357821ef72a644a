#include "model/paged_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>

#include "core/error.h"
#include "kernels/paged_attention/paged_attention.h"

// The Fortran BLAS GEMMs of the BLAS LibTorch's CPU library links (MKL in
// the x86 wheels, LP64).  Weak: where the symbol is absent the pointers are
// null, paged_decode_available() says false and attention keeps its gather
// path.  Called directly rather than through at::mm because one decode step
// makes thousands of small GEMMs (a few per row, layer and run of blocks);
// the dispatcher's per-op cost would exceed the arithmetic.
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc) __attribute__((weak));
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
            const double* beta, double* c, const int* ldc) __attribute__((weak));
}

namespace zerorl::model {

namespace {

std::atomic<DecodeAttention> g_mode{DecodeAttention::kPaged};

// Column-major C[m,n] = alpha op(A) op(B) + beta C, as BLAS.
void gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
  const int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
  sgemm_(&ta, &tb, &mi, &ni, &ki, &alpha, a, &la, b, &lb, &beta, c, &lc);
}
void gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
  const int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
  dgemm_(&ta, &tb, &mi, &ni, &ki, &alpha, a, &la, b, &lb, &beta, c, &lc);
}

// A plane of keys/values stored as P (the pool's dtype): pool row p's key at
// k + p * ks (C values), value at v + p * vs (Cv values).
template <typename P>
struct Plane {
  const P* k;
  int64_t ks, C;
  const P* v;
  int64_t vs, Cv;
};

// Scratch of one thread.  Upcast holds a bf16 plane's runs converted to the
// compute dtype (keys [len, C], values [len, Cv]) for one attend() call.
template <typename T>
struct Scratch {
  std::vector<T> S, K, V;
};

// The runs of a bf16 plane as one contiguous fp32 plane of len_total rows in
// scratch (values aliasing the keys stay aliased): one GEMM then covers every
// run.  The arithmetic is the fp32 kernel's on the bf16 values read exactly.
Plane<float> upcast(const Plane<c10::BFloat16>& pl, const std::vector<PagedDecodePlan::Run>& runs,
                    int64_t len_total, Scratch<float>& sc, std::vector<PagedDecodePlan::Run>* one) {
  const bool alias = pl.v == pl.k && pl.vs == pl.ks && pl.Cv <= pl.C;
  sc.K.resize(static_cast<size_t>(len_total * pl.C));
  if (!alias) sc.V.resize(static_cast<size_t>(len_total * pl.Cv));
  int64_t r0 = 0;
  for (const auto& r : runs) {
    for (int64_t i = 0; i < r.len; ++i) {
      const c10::BFloat16* src = pl.k + (r.row0 + i) * pl.ks;
      float* dst = sc.K.data() + (r0 + i) * pl.C;
      for (int64_t c = 0; c < pl.C; ++c) dst[c] = static_cast<float>(src[c]);
      if (alias) continue;
      const c10::BFloat16* vsrc = pl.v + (r.row0 + i) * pl.vs;
      float* vdst = sc.V.data() + (r0 + i) * pl.Cv;
      for (int64_t c = 0; c < pl.Cv; ++c) vdst[c] = static_cast<float>(vsrc[c]);
    }
    r0 += r.len;
  }
  *one = {{0, len_total}};
  return {sc.K.data(), pl.C, pl.C, alias ? sc.K.data() : sc.V.data(), alias ? pl.C : pl.Cv, pl.Cv};
}

// Attention of m query rows q[i * C ..] against the positions of `runs`
// (len_total of them): O[m, Cv] = sum_l exp(s_l - mx) v_l (unnormalised),
// mx[m] the row maxima and l[m] the sums of exp(s_l - mx).
template <typename T>
void attend(const T* q, int64_t m, const Plane<T>& pl,
            const std::vector<PagedDecodePlan::Run>& runs, int64_t len_total, Scratch<T>& sc, T* O,
            T* mx, T* l) {
  if (len_total == 0) {
    std::fill(O, O + m * pl.Cv, T(0));
    std::fill(mx, mx + m, -std::numeric_limits<T>::infinity());
    std::fill(l, l + m, T(0));
    return;
  }
  std::vector<T>& S = sc.S;
  S.resize(static_cast<size_t>(m * len_total));
  // Row-major S[m, len] = q[m, C] k_run[len, C]^T, i.e. column-major
  // S^T[len, m] = k_run^T' (stored C x len) transposed times q^T (C x m).
  int64_t c0 = 0;
  for (const auto& r : runs) {
    gemm('T', 'N', r.len, m, pl.C, T(1), pl.k + r.row0 * pl.ks, pl.ks, q, pl.C, T(0), S.data() + c0,
         len_total);
    c0 += r.len;
  }
  for (int64_t i = 0; i < m; ++i) {
    T* s = S.data() + i * len_total;
    T hi = *std::max_element(s, s + len_total);
    T sum = 0;
    for (int64_t j = 0; j < len_total; ++j) {
      s[j] = std::exp(s[j] - hi);
      sum += s[j];
    }
    mx[i] = hi;
    l[i] = sum;
  }
  // Row-major O[m, Cv] += P[m, len] v_run[len, Cv]: column-major
  // O^T[Cv, m] = v_run^T (stored Cv x len) P^T (stored len x m).
  c0 = 0;
  for (size_t ri = 0; ri < runs.size(); ++ri) {
    const auto& r = runs[ri];
    gemm('N', 'N', pl.Cv, m, r.len, T(1), pl.v + r.row0 * pl.vs, pl.vs, S.data() + c0, len_total,
         ri == 0 ? T(0) : T(1), O, pl.Cv);
    c0 += r.len;
  }
}

// A bf16 plane: its runs upcast into fp32 scratch, then the fp32 kernel.
void attend(const float* q, int64_t m, const Plane<c10::BFloat16>& pl,
            const std::vector<PagedDecodePlan::Run>& runs, int64_t len_total, Scratch<float>& sc,
            float* O, float* mx, float* l) {
  std::vector<PagedDecodePlan::Run> one;
  const Plane<float> f = len_total > 0 ? upcast(pl, runs, len_total, sc, &one) : Plane<float>{};
  attend(q, m, f, one, len_total, sc, O, mx, l);
}

template <typename T, typename P>
void run_plan(const T* q, int64_t q_row_stride, int64_t Hq, const Plane<P>& pl,
              const PagedDecodePlan& plan, T* out, int64_t out_row_stride) {
  const int64_t C = pl.C, Cv = pl.Cv;
  const int64_t num_groups = static_cast<int64_t>(plan.groups.size());
  at::parallel_for(0, num_groups, 1, [&](int64_t g0, int64_t g1) {
    Scratch<T> sc;
    std::vector<T> Qs, Os, ms, ls, Oo(static_cast<size_t>(Hq * Cv)), mo(Hq), lo(Hq);
    for (int64_t gi = g0; gi < g1; ++gi) {
      const PagedDecodePlan::Group& g = plan.groups[static_cast<size_t>(gi)];
      const int64_t G = static_cast<int64_t>(g.rows.size()), m = G * Hq;
      const bool cascade = g.shared_len > 0;
      if (cascade) {
        // The group's G * Hq query rows against the shared blocks at once.
        Qs.resize(static_cast<size_t>(m * C));
        for (int64_t r = 0; r < G; ++r)
          std::copy(q + g.rows[r] * q_row_stride, q + g.rows[r] * q_row_stride + Hq * C,
                    Qs.data() + r * Hq * C);
        Os.resize(static_cast<size_t>(m * Cv));
        ms.resize(static_cast<size_t>(m));
        ls.resize(static_cast<size_t>(m));
        attend(Qs.data(), m, pl, g.shared, g.shared_len, sc, Os.data(), ms.data(), ls.data());
      }
      for (int64_t r = 0; r < G; ++r) {
        const int64_t b = g.rows[static_cast<size_t>(r)];
        const auto& own = g.own[static_cast<size_t>(r)];
        int64_t own_len = 0;
        for (const auto& run : own) own_len += run.len;
        attend(q + b * q_row_stride, Hq, pl, own, own_len, sc, Oo.data(), mo.data(), lo.data());
        T* o = out + b * out_row_stride;
        for (int64_t h = 0; h < Hq; ++h) {
          const T* oo = Oo.data() + h * Cv;
          T* dst = o + h * Cv;
          if (!cascade) {
            const T inv = T(1) / lo[h];
            for (int64_t c = 0; c < Cv; ++c) dst[c] = oo[c] * inv;
            continue;
          }
          // Log-sum-exp merge of the shared and the own part.
          const int64_t i = r * Hq + h;
          const T hi = std::max(ms[i], mo[h]);
          const T as = std::exp(ms[i] - hi), ao = lo[h] > 0 ? std::exp(mo[h] - hi) : T(0);
          const T inv = T(1) / (as * ls[i] + ao * lo[h]);
          const T* os = Os.data() + i * Cv;
          for (int64_t c = 0; c < Cv; ++c) dst[c] = (as * os[c] + ao * oo[c]) * inv;
        }
      }
    }
  });
}

// The runs covering blocks [from, to) of `table`, up to position kv_len: one
// per block, never merged with a block that happens to follow it in the pool.
// Merging would make a sequence's GEMM shapes and summation order depend on
// where its blocks lie, i.e. on what else the batch allocated: the cause of
// issue 16's two-rollout-rank k = 0 run ending 2.4e-6 from the colocated one
// (Engine.CompletionsAndLogprobsDoNotDependOnTheBatch).
void add_runs(const std::vector<int64_t>& table, int64_t from, int64_t to, int64_t kv_len,
              int64_t bs, std::vector<PagedDecodePlan::Run>* runs) {
  for (int64_t j = from; j < to; ++j) {
    const int64_t n = std::min(bs, kv_len - j * bs);
    if (n <= 0) break;
    runs->push_back({table[static_cast<size_t>(j)] * bs, n});
  }
}

}  // namespace

void set_decode_attention(DecodeAttention mode) { g_mode.store(mode); }
DecodeAttention decode_attention() { return g_mode.load(); }

bool paged_decode_available(const at::Device& device, at::ScalarType dtype) {
#ifdef ZERORL_WITH_CUDA
  if (device.is_cuda()) return dtype == at::kFloat || dtype == at::kBFloat16;
#endif
  if (!device.is_cpu()) return false;
  if (dtype == at::kFloat || dtype == at::kBFloat16) return sgemm_ != nullptr;
  if (dtype == at::kDouble) return dgemm_ != nullptr;
  return false;
}

std::shared_ptr<PagedDecodePlan> PagedDecodePlan::make(
    const std::vector<const std::vector<int64_t>*>& tables, const std::vector<int64_t>& kv_len,
    int64_t bs, bool share) {
  ZR_CHECK(tables.size() == kv_len.size(), "PagedDecodePlan: ", tables.size(), " tables but ",
           kv_len.size(), " lengths");
  ZR_CHECK(bs > 0, "PagedDecodePlan: block size must be > 0, got ", bs);
  auto plan = std::make_shared<PagedDecodePlan>();
  const int64_t B = static_cast<int64_t>(tables.size());
  plan->num_rows = B;
  for (int64_t b = 0; b < B; ++b) {
    ZR_CHECK(kv_len[b] >= 1, "PagedDecodePlan: row ", b, " attends no positions");
    ZR_CHECK(static_cast<int64_t>(tables[b]->size()) * bs >= kv_len[b], "PagedDecodePlan: row ", b,
             " has ", tables[b]->size(), " blocks of ", bs, " for ", kv_len[b], " positions");
  }
  // Rows by their first block, in order of first appearance.
  std::vector<std::vector<int64_t>> sets;
  std::map<int64_t, size_t> by_first;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t first = share ? tables[b]->front() : -1 - b;
    auto it = by_first.find(first);
    if (it == by_first.end()) {
      by_first.emplace(first, sets.size());
      sets.push_back({b});
    } else {
      sets[it->second].push_back(b);
    }
  }
  for (const auto& rows : sets) {
    // Blocks common to every row's table and full for every row.
    int64_t common = 0;
    if (rows.size() > 1) {
      const std::vector<int64_t>& t0 = *tables[rows[0]];
      common = static_cast<int64_t>(t0.size());
      for (int64_t b : rows) {
        const std::vector<int64_t>& t = *tables[b];
        int64_t c = 0;
        while (c < common && c < static_cast<int64_t>(t.size()) && t[c] == t0[c]) ++c;
        common = std::min(c, kv_len[b] / bs);
      }
    }
    if (common == 0) {
      for (int64_t b : rows) {
        Group g;
        g.rows = {b};
        g.own.resize(1);
        add_runs(*tables[b], 0, static_cast<int64_t>(tables[b]->size()), kv_len[b], bs, &g.own[0]);
        plan->groups.push_back(std::move(g));
      }
      continue;
    }
    Group g;
    g.rows = rows;
    g.shared_len = common * bs;
    add_runs(*tables[rows[0]], 0, common, g.shared_len, bs, &g.shared);
    for (int64_t b : rows) {
      g.own.emplace_back();
      add_runs(*tables[b], common, static_cast<int64_t>(tables[b]->size()), kv_len[b], bs,
               &g.own.back());
    }
    plan->groups.push_back(std::move(g));
  }
  return plan;
}

void PagedDecodePlan::flatten(std::vector<int64_t>* ptr, std::vector<int64_t>* row0,
                              std::vector<int64_t>* len) const {
  std::vector<const std::vector<Run>*> shared(static_cast<size_t>(num_rows)),
      own(static_cast<size_t>(num_rows));
  for (const Group& g : groups)
    for (size_t r = 0; r < g.rows.size(); ++r) {
      shared[static_cast<size_t>(g.rows[r])] = &g.shared;
      own[static_cast<size_t>(g.rows[r])] = &g.own[r];
    }
  ptr->assign(1, 0);
  row0->clear();
  len->clear();
  for (int64_t b = 0; b < num_rows; ++b) {
    ZR_CHECK(own[static_cast<size_t>(b)] != nullptr, "PagedDecodePlan: row ", b, " is in no group");
    for (const auto* runs : {shared[static_cast<size_t>(b)], own[static_cast<size_t>(b)]})
      for (const Run& r : *runs) {
        row0->push_back(r.row0);
        len->push_back(r.len);
      }
    ptr->push_back(static_cast<int64_t>(row0->size()));
  }
}

void PagedDecodePlan::upload_runs(const at::Device& device) {
  std::vector<int64_t> ptr, row0, len;
  flatten(&ptr, &row0, &len);
  const int64_t R = static_cast<int64_t>(row0.size());
  std::vector<int64_t> all = ptr;
  all.insert(all.end(), row0.begin(), row0.end());
  all.insert(all.end(), len.begin(), len.end());
  const at::Tensor t = at::tensor(all, at::kLong).to(device);  // one copy to the device
  run_ptr = t.narrow(0, 0, num_rows + 1);
  run_row0 = t.narrow(0, num_rows + 1, R);
  run_len = t.narrow(0, num_rows + 1 + R, R);
}

void paged_decode_attention(const at::Tensor& q_BHC, const at::Tensor& k_PC,
                            const at::Tensor& v_PCv, const PagedDecodePlan& plan,
                            const at::Tensor& out_BHCv) {
  const at::ScalarType dt = q_BHC.scalar_type();
  ZR_CHECK(paged_decode_available(q_BHC.device(), dt),
           "paged_decode_attention: needs CPU fp32/bf16/fp64 tensors and a BLAS, got ", dt, " on ",
           q_BHC.device());
  ZR_CHECK(k_PC.scalar_type() == dt && v_PCv.scalar_type() == dt && out_BHCv.scalar_type() == dt,
           "paged_decode_attention: q, k, v and out must share one dtype");
  ZR_CHECK(k_PC.device().is_cpu() && v_PCv.device().is_cpu() && out_BHCv.device().is_cpu(),
           "paged_decode_attention: all tensors must be on the CPU");
  ZR_CHECK(q_BHC.dim() == 3 && out_BHCv.dim() == 3 && k_PC.dim() == 2 && v_PCv.dim() == 2,
           "paged_decode_attention: q/out must be [B,Hq,*] and k/v [P,*]");
  const int64_t B = q_BHC.size(0), Hq = q_BHC.size(1), C = q_BHC.size(2), Cv = v_PCv.size(1);
  ZR_CHECK(B == plan.num_rows, "paged_decode_attention: q has ", B, " rows, the plan ",
           plan.num_rows);
  ZR_CHECK(k_PC.size(1) == C && k_PC.size(0) == v_PCv.size(0), "paged_decode_attention: k ",
           k_PC.sizes(), " does not fit q ", q_BHC.sizes(), " and v ", v_PCv.sizes());
  ZR_CHECK(out_BHCv.size(0) == B && out_BHCv.size(1) == Hq && out_BHCv.size(2) == Cv,
           "paged_decode_attention: out must be [", B, ", ", Hq, ", ", Cv, "], got ",
           out_BHCv.sizes());
  ZR_CHECK(q_BHC.stride(2) == 1 && q_BHC.stride(1) == C && out_BHCv.stride(2) == 1 &&
               out_BHCv.stride(1) == Cv && k_PC.stride(1) == 1 && v_PCv.stride(1) == 1,
           "paged_decode_attention: q/out must be contiguous per row, k/v per pool row");
  auto check_runs = [&](const std::vector<PagedDecodePlan::Run>& runs) {
    for (const auto& r : runs)
      ZR_CHECK(r.row0 >= 0 && r.len >= 1 && r.row0 + r.len <= k_PC.size(0),
               "paged_decode_attention: the plan reads pool rows beyond ", k_PC.size(0));
  };
  for (const auto& g : plan.groups) {
    check_runs(g.shared);
    for (const auto& own : g.own) check_runs(own);
  }
  auto run = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    Plane<T> pl{k_PC.data_ptr<T>(), k_PC.stride(0), C, v_PCv.data_ptr<T>(), v_PCv.stride(0), Cv};
    run_plan(q_BHC.data_ptr<T>(), q_BHC.stride(0), Hq, pl, plan, out_BHCv.data_ptr<T>(),
             out_BHCv.stride(0));
  };
  if (dt == at::kFloat) {
    run(static_cast<float*>(nullptr));
  } else if (dt == at::kDouble) {
    run(static_cast<double*>(nullptr));
  } else {
    // bf16: queries and outputs are small ([B, Hq, C]) and go through fp32
    // copies; the pool is upcast run by run inside the kernel, never whole.
    using BF = c10::BFloat16;
    const at::Tensor q32 = q_BHC.to(at::kFloat).contiguous();
    at::Tensor out32 = at::empty({B, Hq, Cv}, q32.options());
    Plane<BF> pl{k_PC.data_ptr<BF>(), k_PC.stride(0), C, v_PCv.data_ptr<BF>(), v_PCv.stride(0), Cv};
    run_plan(q32.data_ptr<float>(), q32.stride(0), Hq, pl, plan, out32.data_ptr<float>(),
             out32.stride(0));
    out_BHCv.copy_(out32);
  }
}

void paged_decode_attention_heads(const at::Tensor& q_BHC, const at::Tensor& k_HPC,
                                  const at::Tensor& v_HPCv, const PagedDecodePlan& plan,
                                  const at::Tensor& out_BHCv) {
  ZR_CHECK(q_BHC.dim() == 3 && k_HPC.dim() == 3 && v_HPCv.dim() == 3 && out_BHCv.dim() == 3,
           "paged_decode_attention_heads: q/out must be [B,Hq,*] and k/v [Hkv,P,*]");
  const int64_t B = q_BHC.size(0), Hq = q_BHC.size(1), Hkv = k_HPC.size(0);
  ZR_CHECK(Hkv >= 1 && Hq % Hkv == 0, "paged_decode_attention_heads: ", Hq,
           " query heads are not a multiple of ", Hkv, " kv heads");
  // The runs must lie in the pool (the kernel cannot check them on the device).
  const int64_t P = k_HPC.size(1);
  auto check_runs = [&](const std::vector<PagedDecodePlan::Run>& runs) {
    for (const auto& r : runs)
      ZR_CHECK(r.row0 >= 0 && r.len >= 1 && r.row0 + r.len <= P,
               "paged_decode_attention_heads: the plan reads pool rows beyond ", P);
  };
  for (const auto& g : plan.groups) {
    check_runs(g.shared);
    for (const auto& own : g.own) check_runs(own);
  }
  if (q_BHC.is_cuda()) {
    ZR_CHECK(plan.run_ptr.defined() && plan.run_ptr.device() == q_BHC.device(),
             "paged_decode_attention_heads: the plan's runs are not on ", q_BHC.device(),
             " (call upload_runs)");
    kernels::paged_decode_attention_cuda(q_BHC, k_HPC, v_HPCv, plan.run_ptr, plan.run_row0,
                                         plan.run_len, out_BHCv);
    return;
  }
  const int64_t g = Hq / Hkv;
  const at::Tensor q4 = q_BHC.view({B, Hkv, g, q_BHC.size(2)});
  const at::Tensor o4 = out_BHCv.view({B, Hkv, g, out_BHCv.size(2)});
  for (int64_t i = 0; i < Hkv; ++i)
    paged_decode_attention(q4.select(1, i), k_HPC[i], v_HPCv[i], plan, o4.select(1, i));
}

}  // namespace zerorl::model
