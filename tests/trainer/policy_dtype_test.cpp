// policy.dtype conversions (issue #13 item 1): a policy whose weights are in
// another dtype is cast to the compute dtype, every floating weight, and the
// log says so once per load, not once per tensor.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model/model.h"
#include "trainer/policy_file.h"

namespace zerorl {
namespace {

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(PolicyDtype, CastConvertsEveryWeightAndSaysSoOnce) {
  model::CausalLM m(model::ModelConfig{});
  std::vector<at::Tensor> fp32;
  for (auto& p : m.parameters(true)) fp32.push_back(p.detach().clone());
  ASSERT_GT(fp32.size(), 10u);

  testing::internal::CaptureStderr();
  EXPECT_TRUE(cast_parameters(m, at::kBFloat16, "policy tiny.h5"));
  EXPECT_FALSE(cast_parameters(m, at::kBFloat16, "policy tiny.h5"))  // nothing left to convert
      << "a second cast found weights still in fp32";
  const std::string said = testing::internal::GetCapturedStderr();
  EXPECT_EQ(count(said, "policy tiny.h5 holds fp32 weights; converted to bf16"), 1) << said;

  size_t i = 0;
  for (auto& p : m.parameters(true)) {
    ASSERT_EQ(p.scalar_type(), at::kBFloat16) << "parameter " << i;
    EXPECT_TRUE(at::equal(p.detach(), fp32[i].to(at::kBFloat16))) << "parameter " << i;
    ++i;
  }
  // And back: bf16 -> fp32 is exact; an empty `what` converts silently.
  testing::internal::CaptureStderr();
  EXPECT_TRUE(cast_parameters(m, at::kFloat, ""));
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  i = 0;
  for (auto& p : m.parameters(true)) {
    ASSERT_EQ(p.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(p.detach(), fp32[i].to(at::kBFloat16).to(at::kFloat)));
    ++i;
  }
}

}  // namespace
}  // namespace zerorl
