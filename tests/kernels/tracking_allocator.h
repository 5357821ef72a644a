// A CPU allocator that forwards to LibTorch's and records the peak of live
// bytes and the largest single allocation, so that a test
// (tests/kernels/logprob_test.cpp, tests/model/attention_memory_test.cpp,
// tests/trainer/memory_plan_test.cpp) or a benchmark (bench/kernels_logprob.cpp)
// can see whether an [N x V] or [H x T x T] buffer ever existed.
// Tests get it through installed_tracker(), which installs it once.
#pragma once

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace zerorl::test {

class TrackingAllocator final : public c10::Allocator {
 public:
  explicit TrackingAllocator(c10::Allocator* base) : base_(base) { self_ = this; }
  // data == context, as raw_allocate() requires; the base allocation is kept
  // alive in a table until release().
  c10::DataPtr allocate(size_t n) override {
    if (n == 0) return base_->allocate(0);
    c10::DataPtr inner = base_->allocate(n);
    void* data = inner.get();
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_ += static_cast<int64_t>(n);
      peak_ = std::max(peak_, live_);
      largest_ = std::max(largest_, static_cast<int64_t>(n));
      table_.emplace(data, Entry{std::move(inner), static_cast<int64_t>(n)});
    }
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dst, const void* src, std::size_t n) const override {
    std::memcpy(dst, src, n);
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    peak_ = base_line_ = live_;
    largest_ = 0;
  }
  // The largest single allocation since reset_peak().
  int64_t largest_since_reset() {
    std::lock_guard<std::mutex> lock(mu_);
    return largest_;
  }
  int64_t peak_above_reset() {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_ - base_line_;
  }

 private:
  struct Entry {
    c10::DataPtr inner;
    int64_t bytes;
  };
  static void release(void* p) {
    c10::DataPtr doomed;  // freed after the lock is released
    std::lock_guard<std::mutex> lock(self_->mu_);
    auto it = self_->table_.find(p);
    if (it == self_->table_.end()) return;
    self_->live_ -= it->second.bytes;
    doomed = std::move(it->second.inner);
    self_->table_.erase(it);
  }
  static inline TrackingAllocator* self_ = nullptr;
  c10::Allocator* base_;
  std::mutex mu_;
  std::unordered_map<void*, Entry> table_;
  int64_t live_ = 0, peak_ = 0, base_line_ = 0, largest_ = 0;
};

// The process's CPU allocator from the first call on: a TrackingAllocator
// over LibTorch's, installed once (never removed; tensors allocated before
// the first call are simply not counted).
inline TrackingAllocator& installed_tracker() {
  static TrackingAllocator* t = [] {
    auto* a = new TrackingAllocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(a, /*priority=*/100);
    return a;
  }();
  return *t;
}

}  // namespace zerorl::test
