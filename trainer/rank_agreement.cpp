#include "trainer/rank_agreement.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cstring>

#include "core/comm.h"
#include "core/error.h"
#include "core/recipe_diff.h"

namespace zerorl {

const std::vector<std::string> kPerRankKeys = {"log.level", "rewards.threads"};

namespace {

at::Tensor bytes_of(const std::string& s, int64_t size) {
  at::Tensor t = at::zeros({std::max<int64_t>(size, 1)}, at::kByte);
  if (!s.empty()) std::memcpy(t.data_ptr(), s.data(), s.size());
  return t;
}

// Every rank's string, in rank order (two allgathers: lengths, then bytes).
std::vector<std::string> allgather_strings(const std::string& mine, Comm& comm) {
  at::Tensor len = at::full({1}, static_cast<int64_t>(mine.size()), at::kLong);
  at::Tensor lens = comm.allgather(len).view(-1);
  int64_t longest = lens.max().item<int64_t>();
  at::Tensor all = comm.allgather(bytes_of(mine, longest));
  std::vector<std::string> out;
  for (int r = 0; r < comm.size(); ++r)
    out.emplace_back(static_cast<const char*>(all[r].data_ptr()), lens[r].item<int64_t>());
  return out;
}

std::string broadcast_string(const std::string& mine, Comm& comm) {
  at::Tensor len = at::full({1}, static_cast<int64_t>(mine.size()), at::kLong);
  comm.broadcast(len, 0);
  const int64_t n = len.item<int64_t>();
  at::Tensor bytes = bytes_of(comm.rank() == 0 ? mine : std::string(), n);
  comm.broadcast(bytes, 0);
  return std::string(static_cast<const char*>(bytes.data_ptr()), n);
}

}  // namespace

void check_ranks_share_recipe(const std::string& recipe_yaml, Comm& comm) {
  if (comm.size() == 1) return;
  const std::string root = broadcast_string(recipe_yaml, comm);
  std::string keys;  // this rank's differences from rank 0, "a.b, c.d"
  for (const auto& k : recipe_changed_keys(root, recipe_yaml))
    if (!key_matches(k, kPerRankKeys)) keys += (keys.empty() ? "" : ", ") + k;
  const std::vector<std::string> all = allgather_strings(keys, comm);
  std::string msg;
  int differing = 0;
  for (int r = 1; r < comm.size(); ++r)
    if (!all[r].empty()) {
      ++differing;
      msg += "\n  rank " + std::to_string(r) + ": " + all[r];
    }
  ZR_CHECK(differing == 0, "the ranks of this job were given different recipes: ", differing,
           " of ", comm.size(), " ranks differ from rank 0 at these keys (after overrides):", msg,
           "\nEvery rank must run the same recipe (only ", kPerRankKeys[0], " and ",
           kPerRankKeys[1], " may differ); check the launch command's per-rank arguments");
}

void check_ranks_share_weights(const NamedTensors& weights, const std::string& what, Comm& comm) {
  if (comm.size() == 1) return;
  Checkpoint c;
  c.weights = weights;
  const std::vector<std::string> all = allgather_strings(weights_hash(c), comm);
  std::string ranks;
  for (int r = 1; r < comm.size(); ++r)
    if (all[r] != all[0]) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  ZR_CHECK(ranks.empty(), "the ranks loaded different weights from ", what, ": rank(s) ", ranks,
           " differ from rank 0 (weights hash ", all[0], "); is the file the same on every node?");
}

void broadcast_from_rank0(const NamedTensors& tensors, Comm& comm) {
  if (comm.size() == 1) return;
  at::NoGradGuard no_grad;
  for (const auto& [name, t] : tensors) {
    at::Tensor x = t;  // shares storage: the broadcast lands in the model
    ZR_CHECK(x.is_contiguous(), "broadcast_from_rank0: '", name, "' is not contiguous");
    comm.broadcast(x, 0);
  }
}

}  // namespace zerorl
