#include "rewards/pipeline.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace zerorl::rewards {

// A fixed pool of num_threads - 1 workers (the calling thread is the last
// one), started lazily by the first batch and joined by the destructor.  One
// batch runs at a time (batch_mu); workers pull sample indices dynamically.
struct RewardPipeline::Impl {
  std::vector<std::string> names;
  std::vector<double> weights;
  std::vector<std::unique_ptr<Reward>> rewards;
  std::unique_ptr<std::atomic<long long>[]> errors;
  size_t errors_cap = 0;

  std::mutex batch_mu;  // one score() batch at a time
  std::mutex mu;
  std::condition_variable wake, done;
  std::vector<std::thread> workers;
  std::function<void()> job;  // the current batch's work loop
  long long generation = 0;   // bumped per batch
  int busy = 0;               // workers still in the current batch
  bool stop = false;

  void start(int n) {
    for (int t = 0; t < n; ++t)
      workers.emplace_back([this] {
        long long seen = 0;
        for (;;) {
          std::function<void()> f;
          {
            std::unique_lock<std::mutex> l(mu);
            wake.wait(l, [&] { return stop || generation != seen; });
            if (stop) return;
            seen = generation;
            f = job;
          }
          f();
          std::lock_guard<std::mutex> l(mu);
          if (--busy == 0) done.notify_all();
        }
      });
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> l(mu);
      stop = true;
    }
    wake.notify_all();
    for (auto& t : workers) t.join();
  }
};

RewardPipeline::RewardPipeline(int num_threads) : impl_(std::make_unique<Impl>()) {
  if (num_threads <= 0) num_threads = (int)std::max(1u, std::thread::hardware_concurrency());
  num_threads_ = num_threads;
}
RewardPipeline::RewardPipeline(RewardPipeline&&) noexcept = default;
RewardPipeline& RewardPipeline::operator=(RewardPipeline&&) noexcept = default;
RewardPipeline::~RewardPipeline() = default;

void RewardPipeline::add(const std::string& name, double weight, std::unique_ptr<Reward> reward) {
  ZR_CHECK(reward != nullptr, "RewardPipeline::add: null reward '", name, "'");
  ZR_CHECK(std::find(impl_->names.begin(), impl_->names.end(), name) == impl_->names.end(),
           "RewardPipeline::add: duplicate reward name '", name, "'");
  impl_->names.push_back(name);
  impl_->weights.push_back(weight);
  impl_->rewards.push_back(std::move(reward));
  // Atomics cannot move: rebuild the counter array (add() is start-up only).
  auto fresh = std::make_unique<std::atomic<long long>[]>(impl_->names.size());
  for (size_t i = 0; i < impl_->names.size(); ++i)
    fresh[i] = i < impl_->errors_cap ? impl_->errors[i].load() : 0;
  impl_->errors = std::move(fresh);
  impl_->errors_cap = impl_->names.size();
}

ScoredSample RewardPipeline::score_one(const Sample& sample) const {
  ScoredSample out;
  const size_t n = impl_->rewards.size();
  out.values.assign(n, 0.0);
  out.errors.assign(n, "");
  out.failed.assign(n, 0);
  out.answers.assign(n, "");
  out.reasons.assign(n, "");
  for (size_t i = 0; i < n; ++i) {
    RewardResult r;
    try {
      r = impl_->rewards[i]->score(sample);
    } catch (const std::exception& e) {
      r = RewardResult{};
      r.error = str_cat("reward threw: ", e.what());
      r.failed = true;
    } catch (...) {
      r = RewardResult{};
      r.error = "reward threw a non-standard exception";
      r.failed = true;
    }
    if (!std::isfinite(r.value)) {
      r.error = str_cat("non-finite reward value ", r.value, r.error.empty() ? "" : "; ", r.error);
      r.value = 0.0;
      r.failed = true;
    } else if (std::abs(r.value) > clip_) {
      r.error = str_cat("reward value ", r.value, " outside rewards.clip (+-", clip_, ")",
                        r.error.empty() ? "" : "; ", r.error);
      r.value = 0.0;
      r.failed = true;
    }
    if (!r.error.empty()) impl_->errors[i].fetch_add(1, std::memory_order_relaxed);
    out.values[i] = r.value;
    out.errors[i] = r.error;
    out.failed[i] = r.failed;
    out.answers[i] = r.answer;
    out.reasons[i] = r.reason.empty() ? r.error : r.reason;
    out.total += impl_->weights[i] * r.value;
    out.components[impl_->names[i]] = r.value;
    for (auto& kv : r.components) out.components[impl_->names[i] + "." + kv.first] = kv.second;
  }
  return out;
}

std::vector<ScoredSample> RewardPipeline::score(const std::vector<Sample>& samples) const {
  std::vector<ScoredSample> out(samples.size());
  if (num_threads_ <= 1 || samples.size() <= 1) {
    for (size_t i = 0; i < samples.size(); ++i) out[i] = score_one(samples[i]);
    return out;
  }
  Impl& im = *impl_;
  std::lock_guard<std::mutex> batch(im.batch_mu);
  // Dynamic scheduling: grading cost varies by orders of magnitude between a
  // plain integer and a symbolic expression, so workers pull indices.
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next.fetch_add(1); i < samples.size(); i = next.fetch_add(1))
      out[i] = score_one(samples[i]);
  };
  {
    std::lock_guard<std::mutex> l(im.mu);
    if (im.workers.empty()) im.start(num_threads_ - 1);
    im.job = work;
    im.busy = (int)im.workers.size();
    ++im.generation;
  }
  im.wake.notify_all();
  work();
  std::unique_lock<std::mutex> l(im.mu);
  im.done.wait(l, [&] { return im.busy == 0; });
  im.job = nullptr;
  return out;
}

size_t RewardPipeline::size() const { return impl_->rewards.size(); }
const std::vector<std::string>& RewardPipeline::names() const { return impl_->names; }
const std::vector<double>& RewardPipeline::weights() const { return impl_->weights; }
std::vector<long long> RewardPipeline::error_counts() const {
  std::vector<long long> v;
  for (size_t i = 0; i < impl_->names.size(); ++i) v.push_back(impl_->errors[i].load());
  return v;
}

RewardEntryConfig RewardEntryConfig::from(const ConfigNode& entry, const std::string& name) {
  RewardEntryConfig c;
  c.type = entry.get<std::string>("type", name);
  c.weight = entry.get<double>("weight", c.weight);
  ZR_CHECK(std::isfinite(c.weight), entry.where("weight"), ": ", entry.path("weight"),
           " must be finite, got ", c.weight);
  return c;
}

RewardPipeline build_reward_pipeline(const ConfigNode& rewards_section, int num_threads) {
  const auto is_pipeline_key = [](const std::string& k) {
    return k == "threads" || k == "max_error_rate" || k == "clip";
  };
  auto keys = rewards_section.keys();
  ZR_CHECK(!std::all_of(keys.begin(), keys.end(), is_pipeline_key), rewards_section.where(), ": '",
           rewards_section.path(),
           "' lists no rewards (expected e.g. accuracy: {type: math, weight: 1.0})");
  if (num_threads < 0) {
    const long threads = rewards_section.get<long>("threads", 0);
    ZR_CHECK(threads >= 0, rewards_section.where("threads"), ": ", rewards_section.path("threads"),
             " must be >= 0 (0: every hardware thread), got ", threads);
    num_threads = static_cast<int>(threads);
  }
  RewardPipeline p(num_threads);
  for (const auto& name : keys) {
    if (name == "threads") continue;
    if (name == "max_error_rate") {
      // Read only when present; the default passed is the pipeline's own, so
      // that the recipe reference (docs/RECIPES.md) shows it.
      double rate = rewards_section.get<double>(name, p.max_error_rate());
      ZR_CHECK(rate >= 0 && rate <= 1, rewards_section.where(name), ": ",
               rewards_section.path(name), " must be in [0, 1], got ", rate);
      p.set_max_error_rate(rate);
      continue;
    }
    if (name == "clip") {
      double clip = rewards_section.get<double>(name, p.clip());
      ZR_CHECK(std::isfinite(clip) && clip > 0, rewards_section.where(name), ": ",
               rewards_section.path(name), " must be finite and > 0, got ", clip);
      p.set_clip(clip);
      continue;
    }
    ConfigNode entry = rewards_section.section(name);
    const RewardEntryConfig e = RewardEntryConfig::from(entry, name);
    p.add(name, e.weight, make_reward(e.type, entry));
  }
  return p;
}

}  // namespace zerorl::rewards
