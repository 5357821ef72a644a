// Parity with Hugging Face transformers 5.x on tiny random checkpoints
// (tests/model/make_hf_fixtures.py), one per supported family: logits,
// chosen experts, greedy continuations; the loader variants (sharded bf16,
// fused experts); export read back by transformers; generation_config.json.
//
// Tolerance: fp32 logits within 1e-4 absolute.  Both sides run the same fp32
// arithmetic except for summation order inside matmuls / attention (HF uses
// SDPA, zerorl an explicit softmax), which moves logits of magnitude ~1-10 by
// ~1e-6; 1e-4 leaves two orders of margin while any real mistake (a wrong
// rope layout, scale or expert) moves them by >= 1e-2.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/safetensors.h"
#include "hf_fixtures.h"
#include "model/hf.h"
#include "model/model.h"

namespace zerorl::model {
namespace {

struct Reference {
  at::Tensor tokens, logits, prompt, greedy;
  std::map<int64_t, at::Tensor> topk;  // layer -> [N,K] sorted
};

Reference read_reference(const std::string& dir) {
  SafetensorsReader r(dir + "/reference.safetensors.ref");
  Reference ref;
  ref.tokens = r.read("tokens");
  ref.logits = r.read("logits");
  ref.prompt = r.read("prompt");
  ref.greedy = r.read("greedy");
  for (const auto& n : r.names())
    if (n.rfind("topk_L", 0) == 0) ref.topk[std::stoll(n.substr(6))] = r.read(n);
  return ref;
}

void check_parity(const std::string& name) {
  ZR_HF_FIXTURES(fx);
  std::string dir = fx + "/" + name;
  auto model = load_hf(dir);
  Reference ref = read_reference(dir);

  ForwardOptions fo;
  fo.record_routing = true;
  at::Tensor logits = model->logits(ref.tokens, fo);
  double diff = (logits - ref.logits).abs().max().item<double>();
  std::cout << "[" << name << "] max |logits - HF| = " << diff << " (logit scale "
            << ref.logits.abs().max().item<double>() << ")\n";
  EXPECT_LE(diff, 1e-4) << name;

  // Chosen experts per token, every MoE layer.
  const auto& routing = model->last_routing();
  ASSERT_EQ(routing.size(), ref.topk.size());
  for (size_t m = 0; m < routing.size(); ++m) {
    int64_t layer = model->moe_layers()[m];
    ASSERT_TRUE(ref.topk.count(layer)) << "HF has no router output for layer " << layer;
    at::Tensor ours = std::get<0>(routing[m].sort(-1));
    EXPECT_TRUE(at::equal(ours, ref.topk[layer])) << name << ": experts differ in layer " << layer;
  }

  // Greedy continuation of 32 tokens through the KV cache.
  KvCache cache = model->make_cache(2, 64);
  std::vector<int64_t> prompt(ref.prompt.data_ptr<int64_t>(),
                              ref.prompt.data_ptr<int64_t>() + ref.prompt.numel());
  at::Tensor next = model->prefill(cache, {1}, {prompt}).argmax(-1);
  std::vector<int64_t> got;
  for (int64_t i = 0; i < ref.greedy.numel(); ++i) {
    got.push_back(next.item<int64_t>());
    if (i + 1 < ref.greedy.numel()) next = model->decode(cache, {1}, next).argmax(-1);
  }
  std::vector<int64_t> want(ref.greedy.data_ptr<int64_t>(),
                            ref.greedy.data_ptr<int64_t>() + ref.greedy.numel());
  EXPECT_EQ(got, want) << name << ": greedy continuation differs";
}

TEST(HfParity, DeepseekV3MlaYarnGroupLimitedRouting) { check_parity("deepseek_v3"); }
TEST(HfParity, DeepseekV2LiteStyleNoQLoraHalfRopeTied) { check_parity("deepseek_lite"); }
TEST(HfParity, Qwen2MoeGqaSharedExpertGate) { check_parity("qwen2_moe"); }
TEST(HfParity, DeepseekV2QLoraGroupLimitedGreedyByMaxRoutedScaling) { check_parity("deepseek_v2"); }
TEST(HfParity, DeepseekV2LiteNoQLoraGreedyTwoSharedExperts) { check_parity("deepseek_v2_lite"); }
TEST(HfParity, Qwen3MoePerHeadQkNormNoSharedExpertNormalisedTopK) { check_parity("qwen3_moe"); }
TEST(HfParity, OlmoeFullWidthQkNormEveryLayerMoe) { check_parity("olmoe"); }
TEST(HfParity, Qwen2DenseQkvBiasTied) { check_parity("qwen2"); }
TEST(HfParity, Qwen3DensePerHeadQkNormAttentionBias) { check_parity("qwen3"); }
TEST(HfParity, LlamaDenseLlama3RopeAttentionAndMlpBias) { check_parity("llama"); }

// Every family written by save_hf and read back by transformers itself
// (tests/model/check_hf_reload.py): same logits within 1e-4, same greedy ids.
TEST(HfExport, TransformersReloadsEveryFamilyWithTheSameIds) {
  ZR_HF_FIXTURES(fx);
  namespace fs = std::filesystem;
  const std::string root = std::string(ZR_BINARY_DIR) + "/model_hf_reload_test";
  testing::remove_tree(root);
  std::string dirs;
  for (const char* name : {"deepseek_v3", "deepseek_v2", "deepseek_v2_lite", "qwen2_moe",
                           "qwen3_moe", "olmoe", "qwen2", "qwen3", "llama"}) {
    const std::string out = root + "/" + name;
    save_hf(*load_hf(fx + "/" + name), out);
    fs::copy_file(fx + "/" + name + "/reference.safetensors.ref",
                  out + "/reference.safetensors.ref");
    dirs += " " + out;
  }
  const std::string cmd = std::string(ZR_PYTHON) + " " + ZR_SOURCE_DIR +
                          "/tests/model/check_hf_reload.py" + dirs + " > " + root + "/log 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string log = testing::read_text(root + "/log");
  std::cout << log;
  EXPECT_EQ(rc, 0) << log;
  if (rc == 0) testing::remove_tree(root);
}

TEST(HfImport, GenerationConfigEosIdsReplaceConfigJsonsAndExport) {
  ZR_HF_FIXTURES(fx);
  namespace fs = std::filesystem;
  const std::string dir = std::string(ZR_BINARY_DIR) + "/model_hf_genconfig_test";
  testing::remove_tree(dir);
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(fx + "/qwen2/" + f, dir + "/" + f);
  EXPECT_TRUE(load_hf(dir)->config().eos_token_ids.empty());
  std::ofstream(dir + "/generation_config.json")
      << R"({"eos_token_id": [7, 3], "do_sample": false})";
  auto m = load_hf(dir);
  EXPECT_EQ(m->config().eos_token_ids, (std::vector<int64_t>{7, 3}));
  EXPECT_EQ(m->config().eos_token_id, 7);
  // The list travels with the model: export writes it to config.json.
  const std::string out = dir + "/export";
  save_hf(*m, out);
  EXPECT_EQ(ModelConfig::from_hf_json_file(out + "/config.json").eos_token_ids,
            (std::vector<int64_t>{7, 3}));
  std::ofstream(dir + "/generation_config.json") << R"({"eos_token_id": 500})";
  try {
    load_hf(dir);
    FAIL() << "expected an error for an id outside the vocabulary";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("generation_config.json"), std::string::npos) << e.what();
  }
  testing::remove_tree(dir);
}

TEST(HfImport, FusedExpertLayoutLoadsTheSameWeights) {
  ZR_HF_FIXTURES(fx);
  auto a = load_hf(fx + "/deepseek_v3");
  auto b = load_hf(fx + "/deepseek_v3_fused");
  auto wa = a->named_weights(), wb = b->named_weights();
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i)
    EXPECT_TRUE(at::equal(wa[i].second, wb[i].second)) << wa[i].first;
}

TEST(HfImport, ShardedBf16KeepsDtypeAndMatchesFp32WithinBf16Rounding) {
  ZR_HF_FIXTURES(fx);
  auto f32 = load_hf(fx + "/deepseek_v3");
  auto bf = load_hf(fx + "/deepseek_v3_bf16_sharded");  // 13 shards + index, every tensor bf16
  auto wa = f32->named_weights(), wb = bf->named_weights();
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    EXPECT_EQ(wb[i].second.scalar_type(), at::kBFloat16) << wa[i].first;
    EXPECT_TRUE(at::equal(wa[i].second.to(at::kBFloat16), wb[i].second)) << wa[i].first;
  }
  // The bf16 model runs (mixed precision as HF: fp32 norms/router/softmax)
  // and stays close to fp32 on average: bf16 keeps 8 bits of mantissa, and a
  // near-tie between experts may flip, so a max-norm bound would be arbitrary.
  at::manual_seed(3);
  at::Tensor tokens = at::randint(0, 80, {2, 6}, at::kLong);
  at::NoGradGuard ng;
  at::Tensor a = f32->logits(tokens), b = bf->logits(tokens).to(at::kFloat);
  EXPECT_TRUE(b.isfinite().all().item<bool>());
  double rel = ((a - b).abs().mean() / a.abs().mean()).item<double>();
  std::cout << "bf16 vs fp32 logits: mean relative difference " << rel << "\n";
  EXPECT_LE(rel, 0.05);
}

TEST(HfExport, RoundTripIsBitLosslessAndTransformersLayoutCompatible) {
  ZR_HF_FIXTURES(fx);
  namespace fs = std::filesystem;
  std::string out = std::string(ZR_BINARY_DIR) + "/model_hf_export_test";
  testing::remove_tree(out);
  for (const char* src : {"deepseek_v3_bf16_sharded", "qwen2_moe", "deepseek_lite", "deepseek_v2",
                          "deepseek_v2_lite", "qwen3_moe", "olmoe", "qwen2", "qwen3", "llama"}) {
    auto a = load_hf(fx + "/" + src);
    HfSaveOptions opt;
    opt.max_shard_bytes = std::string(src).find("sharded") != std::string::npos ? 30000 : 0;
    save_hf(*a, out, opt);
    auto b = load_hf(out);
    EXPECT_EQ(a->config().to_hf_json(), b->config().to_hf_json());
    auto wa = a->named_weights(), wb = b->named_weights();
    ASSERT_EQ(wa.size(), wb.size());
    for (size_t i = 0; i < wa.size(); ++i) {
      EXPECT_EQ(wa[i].second.scalar_type(), wb[i].second.scalar_type())
          << src << " " << wa[i].first;
      EXPECT_TRUE(at::equal(wa[i].second, wb[i].second)) << src << " " << wa[i].first;
    }
    // Exported names are HF's per-expert names, exactly those of the source.
    std::set<std::string> src_names, out_names;
    for (const auto& e : fs::directory_iterator(fx + "/" + src))
      if (e.path().extension() == ".safetensors")
        for (auto& n : SafetensorsReader(e.path().string()).names()) src_names.insert(n);
    for (const auto& e : fs::directory_iterator(out))
      if (e.path().extension() == ".safetensors")
        for (auto& n : SafetensorsReader(e.path().string()).names()) out_names.insert(n);
    EXPECT_EQ(src_names, out_names) << src;
  }
}

TEST(HfImport, MissingTensorNamesFileAndTensor) {
  ZR_HF_FIXTURES(fx);
  namespace fs = std::filesystem;
  std::string dir = std::string(ZR_BINARY_DIR) + "/model_hf_missing_test";
  testing::remove_tree(dir);
  fs::create_directories(dir);
  fs::copy_file(fx + "/qwen2_moe/config.json", dir + "/config.json");
  SafetensorsReader r(fx + "/qwen2_moe/model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> ts;
  for (auto& n : r.names())
    if (n != "model.layers.2.mlp.experts.3.up_proj.weight") ts.emplace_back(n, r.read(n));
  write_safetensors(dir + "/model.safetensors", ts);
  try {
    load_hf(dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.layers.2.mlp.experts.3.up_proj.weight"), std::string::npos) << msg;
  }
  // Shape mismatch: a config that disagrees with the tensors.
  std::string cfg = testing::read_text(fx + "/qwen2_moe/config.json");
  auto pos = cfg.find("\"moe_intermediate_size\": 32");
  ASSERT_NE(pos, std::string::npos);
  cfg.replace(pos, 27, "\"moe_intermediate_size\": 40");
  std::ofstream(dir + "/config.json") << cfg;
  write_safetensors(dir + "/model.safetensors", [&] {
    std::vector<std::pair<std::string, at::Tensor>> all;
    for (auto& n : r.names()) all.emplace_back(n, r.read(n));
    return all;
  }());
  try {
    load_hf(dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("experts.0.gate_proj.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("shape"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace zerorl::model
