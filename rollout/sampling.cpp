#include "rollout/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/config.h"
#include "core/error.h"

namespace zerorl::rollout {

void SamplingParams::validate(const std::string& where) const {
  ZR_CHECK(std::isfinite(temperature) && temperature >= 0.0, where,
           ": temperature must be >= 0 (0 = greedy), got ", temperature);
  ZR_CHECK(std::isfinite(top_p) && top_p > 0.0 && top_p <= 1.0, where,
           ": top_p must be in (0, 1], got ", top_p);
  ZR_CHECK(top_k >= 0, where, ": top_k must be >= 0 (0 = off), got ", top_k);
  ZR_CHECK(max_new_tokens >= 1, where, ": max_new_tokens must be >= 1, got ", max_new_tokens);
  for (size_t i = 0; i < stop_strings.size(); ++i)
    ZR_CHECK(!stop_strings[i].empty(), where, ": stop_strings[", i, "] is empty");
  for (size_t i = 0; i < stop_token_ids.size(); ++i)
    ZR_CHECK(stop_token_ids[i] >= 0, where, ": stop_token_ids[", i, "] must be >= 0, got ",
             stop_token_ids[i]);
}

SamplingParams SamplingParams::from(const ConfigNode& n) {
  ZR_CHECK(!n.has("seed"), n.where("seed"), ": ", n.path("seed"),
           " is not read: sampling streams are seeded by train.seed in training (eval.seed in "
           "evaluation); set train.seed instead");
  SamplingParams p;
  p.temperature = n.get<double>("temperature", p.temperature);
  p.top_p = n.get<double>("top_p", p.top_p);
  p.top_k = n.get<int64_t>("top_k", p.top_k);
  p.max_new_tokens = n.get<int64_t>("max_new_tokens", p.max_new_tokens);
  p.stop_strings = n.get<std::vector<std::string>>("stop_strings", p.stop_strings);
  p.stop_token_ids = n.get<std::vector<int64_t>>("stop_token_ids", p.stop_token_ids);
  // Name the key and its position rather than the struct field.
  ZR_CHECK(std::isfinite(p.temperature) && p.temperature >= 0.0, n.where("temperature"), ": ",
           n.path("temperature"), " must be >= 0 (0 = greedy), got ", p.temperature);
  ZR_CHECK(std::isfinite(p.top_p) && p.top_p > 0.0 && p.top_p <= 1.0, n.where("top_p"), ": ",
           n.path("top_p"), " must be in (0, 1], got ", p.top_p);
  ZR_CHECK(p.top_k >= 0, n.where("top_k"), ": ", n.path("top_k"), " must be >= 0 (0 = off), got ",
           p.top_k);
  ZR_CHECK(p.max_new_tokens >= 1, n.where("max_new_tokens"), ": ", n.path("max_new_tokens"),
           " must be >= 1, got ", p.max_new_tokens);
  p.validate(n.where());
  return p;
}

RolloutConfig RolloutConfig::from(const ConfigNode& n) {
  RolloutConfig c;
  c.num_slots = n.get<int64_t>("num_slots", c.num_slots);
  ZR_CHECK(c.num_slots >= 1, n.where("num_slots"), ": ", n.path("num_slots"), " must be >= 1, got ",
           c.num_slots);
  c.kv_cache_gb = n.get<double>("kv_cache_gb", c.kv_cache_gb);
  ZR_CHECK(std::isfinite(c.kv_cache_gb) && c.kv_cache_gb >= 0, n.where("kv_cache_gb"), ": ",
           n.path("kv_cache_gb"), " must be >= 0 (0: size by kv_cache_memory_fraction), got ",
           c.kv_cache_gb);
  c.kv_cache_memory_fraction =
      n.get<double>("kv_cache_memory_fraction", c.kv_cache_memory_fraction);
  ZR_CHECK(c.kv_cache_memory_fraction > 0 && c.kv_cache_memory_fraction <= 1,
           n.where("kv_cache_memory_fraction"), ": ", n.path("kv_cache_memory_fraction"),
           " must be in (0, 1], got ", c.kv_cache_memory_fraction);
  c.kv_block_size = n.get<int64_t>("kv_block_size", c.kv_block_size);
  ZR_CHECK(c.kv_block_size >= 1, n.where("kv_block_size"), ": ", n.path("kv_block_size"),
           " must be >= 1, got ", c.kv_block_size);
  c.stop_check_every = n.get<int64_t>("stop_check_every", c.stop_check_every);
  ZR_CHECK(c.stop_check_every >= 0, n.where("stop_check_every"), ": ", n.path("stop_check_every"),
           " must be >= 0 (0: auto), got ", c.stop_check_every);
  c.cuda_graphs = n.get<bool>("cuda_graphs", c.cuda_graphs);
  c.sampling = SamplingParams::from(n.section("sampling"));
  return c;
}

namespace {

// Lowest id among the maxima; throws on NaN.
int64_t argmax_checked(const float* x, int64_t V) {
  int64_t best = -1;
  float best_v = -std::numeric_limits<float>::infinity();
  for (int64_t v = 0; v < V; ++v) {
    const float xv = x[v];
    ZR_CHECK(!std::isnan(xv), "sampler: logits contain NaN (id ", v, ")");
    if (best < 0 || xv > best_v) {
      best = v;
      best_v = xv;
    }
  }
  ZR_CHECK(best_v > -std::numeric_limits<float>::infinity() &&
               best_v < std::numeric_limits<float>::infinity(),
           "sampler: logits have no finite maximum (max = ", best_v, ")");
  return best;
}

// z[v] <- exp(x[v]/T - max/T); returns log of the normaliser in the same
// shifted units plus the shift, i.e. log sum_v exp(x[v]/T).
double tempered_exp(const float* x, int64_t V, double T, int64_t argmax, std::vector<double>& z) {
  z.resize(static_cast<size_t>(V));
  const double m = static_cast<double>(x[argmax]) / T;
  double sum = 0.0;
  for (int64_t v = 0; v < V; ++v) {
    const double e = std::exp(static_cast<double>(x[v]) / T - m);
    z[static_cast<size_t>(v)] = e;
    sum += e;
  }
  return m + std::log(sum);
}

// Ids kept by top-k/top-p, most probable first (ties: lower id first), given
// unnormalised probabilities w.  Returns the mass of the kept ids (in w's
// units).
double truncate(const std::vector<double>& w, int64_t V, const SamplingParams& p,
                std::vector<int32_t>& order) {
  order.resize(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  auto more_probable = [&w](int32_t a, int32_t b) {
    return w[static_cast<size_t>(a)] > w[static_cast<size_t>(b)] ||
           (w[static_cast<size_t>(a)] == w[static_cast<size_t>(b)] && a < b);
  };
  int64_t n = V;
  if (p.top_k > 0 && p.top_k < V) {
    n = p.top_k;
    std::nth_element(order.begin(), order.begin() + n, order.end(), more_probable);
    order.resize(static_cast<size_t>(n));
  }
  std::sort(order.begin(), order.end(), more_probable);
  double total = 0.0;
  for (int32_t id : order) total += w[static_cast<size_t>(id)];
  if (p.top_p < 1.0) {
    const double target = p.top_p * total;
    double cum = 0.0;
    size_t keep = 0;
    while (keep < order.size()) {
      cum += w[static_cast<size_t>(order[keep])];
      ++keep;
      if (cum >= target) break;
    }
    order.resize(keep);
    total = cum;
  }
  return total;
}

bool truncating(const SamplingParams& p, int64_t V) {
  return (p.top_k > 0 && p.top_k < V) || p.top_p < 1.0;
}

}  // namespace

SampledToken sample_token(const float* logits_V, int64_t V, const SamplingParams& params, Rng& rng,
                          SamplerScratch& scratch) {
  ZR_CHECK(V > 0, "sampler: empty logits row");
  const int64_t amax = argmax_checked(logits_V, V);
  const double T = params.logprob_temperature();
  const double lse = tempered_exp(logits_V, V, T, amax, scratch.z);
  auto logp_of = [&](int64_t id) { return static_cast<double>(logits_V[id]) / T - lse; };
  if (params.greedy()) return {amax, logp_of(amax)};

  const double u = rng.uniform();  // exactly one draw per token, whatever the path
  const std::vector<double>& w = scratch.z;
  int64_t chosen = -1;
  if (!truncating(params, V)) {
    double total = 0.0;
    for (int64_t v = 0; v < V; ++v) total += w[static_cast<size_t>(v)];
    const double target = u * total;
    double cum = 0.0;
    for (int64_t v = 0; v < V; ++v) {
      cum += w[static_cast<size_t>(v)];
      if (target < cum) {
        chosen = v;
        break;
      }
    }
    if (chosen < 0) {  // u * total rounded up to the full sum: last id with mass
      for (int64_t v = V - 1; v >= 0 && chosen < 0; --v)
        if (w[static_cast<size_t>(v)] > 0.0) chosen = v;
    }
  } else {
    const double total = truncate(w, V, params, scratch.order);
    const double target = u * total;
    double cum = 0.0;
    for (int32_t id : scratch.order) {
      cum += w[static_cast<size_t>(id)];
      if (target < cum) {
        chosen = id;
        break;
      }
    }
    if (chosen < 0) chosen = scratch.order.back();
  }
  return {chosen, logp_of(chosen)};
}

std::vector<double> sampling_distribution(const float* logits_V, int64_t V,
                                          const SamplingParams& params) {
  ZR_CHECK(V > 0, "sampler: empty logits row");
  std::vector<double> out(static_cast<size_t>(V), 0.0);
  const int64_t amax = argmax_checked(logits_V, V);
  if (params.greedy()) {
    out[static_cast<size_t>(amax)] = 1.0;
    return out;
  }
  std::vector<double> w;
  tempered_exp(logits_V, V, params.temperature, amax, w);
  std::vector<int32_t> order;
  SamplingParams p = params;
  if (!truncating(p, V)) p.top_k = V;  // keep everything; truncate() still sorts
  const double total = truncate(w, V, p, order);
  for (int32_t id : order) out[static_cast<size_t>(id)] = w[static_cast<size_t>(id)] / total;
  return out;
}

}  // namespace zerorl::rollout
