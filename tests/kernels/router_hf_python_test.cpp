// moe_route() against Hugging Face transformers' own routers (the Python
// oracle tests/kernels/hf_router_oracle.py, run with the venv's python):
// DeepseekV3TopkRouter (sigmoid, e_score_correction_bias for selection only,
// group-limited) and Qwen2MoeTopKRouter (softmax).  Same experts exactly;
// weights within 1e-6 (both fp32, same formula; rounding of the sum only).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "kernels/moe/moe.h"

namespace zk = zerorl::kernels;

namespace {

void write_raw(const std::string& path, const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float));
}

void expect_matches_hf(const std::string& kind, int64_t T, int64_t E, const at::Tensor& bias,
                       const zk::RouterOptions& opt, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor logits = at::randn({T, E}) * 2;
  const std::string dir = ::testing::TempDir();
  const std::string tag = kind + std::to_string(seed);
  const std::string lpath = dir + "/" + tag + "_logits.bin", bpath = dir + "/" + tag + "_bias.bin",
                    opath = dir + "/" + tag + "_hf.txt";
  write_raw(lpath, logits);
  std::string cmd =
      std::string(ZR_PYTHON) + " " + ZR_SOURCE_DIR + "/tests/kernels/hf_router_oracle.py --kind " +
      kind + " --T " + std::to_string(T) + " --E " + std::to_string(E) + " --top_k " +
      std::to_string(opt.top_k) + " --n_group " + std::to_string(opt.n_group) + " --topk_group " +
      std::to_string(opt.topk_group) + " --norm " + std::to_string(opt.norm_topk_prob ? 1 : 0) +
      " --scale " + std::to_string(opt.routed_scaling_factor) + " --logits " + lpath + " --out " +
      opath;
  if (bias.defined()) {
    write_raw(bpath, bias);
    cmd += " --bias " + bpath;
  }
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  const zk::RouterOutput r = zk::moe_route(logits, bias, opt);
  // Ours per token, keyed by expert id.
  std::map<std::pair<int64_t, int64_t>, double> ours;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < opt.top_k; ++k)
      ours[{t, r.topk_idx_TK[t][k].item<int64_t>()}] = r.topk_weight_TK[t][k].item<double>();
  std::ifstream f(opath);
  int64_t t, e, lines = 0;
  double w;
  while (f >> t >> e >> w) {
    ++lines;
    const auto it = ours.find({t, e});
    ASSERT_NE(it, ours.end()) << kind << ": HF picks expert " << e << " for token " << t
                              << ", we do not";
    EXPECT_NEAR(it->second, w, 1e-6) << kind << " token " << t << " expert " << e;
  }
  EXPECT_EQ(lines, T * opt.top_k);
}

}  // namespace

TEST(RouterVsHf, DeepseekV3GroupLimitedWithBias) {
  zk::RouterOptions opt;
  opt.sigmoid = true;
  opt.top_k = 4;
  opt.n_group = 4;
  opt.topk_group = 2;
  opt.routed_scaling_factor = 2.5;
  at::manual_seed(70);
  expect_matches_hf("deepseek_v3", 200, 16, at::randn({16}) * 0.5, opt, 71);
  opt.top_k = 8;  // every expert of the kept groups; negative biased scores included
  expect_matches_hf("deepseek_v3", 200, 16, at::randn({16}) - 1.0, opt, 72);
}

TEST(RouterVsHf, DeepseekV3SingleGroup) {
  zk::RouterOptions opt;
  opt.sigmoid = true;
  opt.top_k = 3;
  opt.norm_topk_prob = false;
  expect_matches_hf("deepseek_v3", 200, 10, at::randn({10}) * 0.2, opt, 73);
}

TEST(RouterVsHf, Qwen2MoeSoftmax) {
  zk::RouterOptions opt;
  opt.top_k = 4;
  expect_matches_hf("qwen2_moe", 200, 12, at::Tensor(), opt, 74);
  opt.norm_topk_prob = false;
  opt.top_k = 1;
  expect_matches_hf("qwen2_moe", 200, 12, at::Tensor(), opt, 75);
}
