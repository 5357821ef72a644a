// core/safetensors: round trip of every dtype the model uses, and the errors
// a user sees for a truncated file, a broken header and a missing tensor
// (each must name the file, and the tensor where there is one).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "core/error.h"
#include "core/safetensors.h"

namespace zerorl {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected zerorl::Error";
  return "";
}

const std::string kDir = ZR_BINARY_DIR;

TEST(Safetensors, RoundTripKeepsBitsAndDtypes) {
  std::string path = kDir + "/st_roundtrip.safetensors";
  std::vector<std::pair<std::string, at::Tensor>> ts = {
      {"a.f32", at::randn({3, 4})},
      {"b.bf16", at::randn({5}).to(at::kBFloat16)},
      {"c.f16", at::randn({2, 2, 2}).to(at::kHalf)},
      {"d.i64", at::arange(7, at::kLong)},
      {"e.empty", at::zeros({0, 3})}};
  write_safetensors(path, ts);
  SafetensorsReader r(path);
  ASSERT_EQ(r.names().size(), ts.size());
  for (auto& [n, t] : ts) {
    at::Tensor back = r.read(n);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << n;
    EXPECT_TRUE(at::equal(back, t)) << n;
  }
  EXPECT_EQ(r.metadata().at("format"), "pt");
}

TEST(Safetensors, TruncatedFileNamesFileAndTensor) {
  std::string path = kDir + "/st_truncated.safetensors";
  write_safetensors(path, {{"first", at::randn({4})}, {"last.weight", at::randn({64})}});
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  auto size = static_cast<off_t>(in.tellg());
  ASSERT_EQ(::truncate(path.c_str(), size - 10), 0);
  std::string msg = error_of([&] { SafetensorsReader r(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("last.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  ASSERT_EQ(::truncate(path.c_str(), 5), 0);
  msg = error_of([&] { SafetensorsReader r(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(Safetensors, BrokenHeaderNamesTheFile) {
  std::string path = kDir + "/st_header.safetensors";
  {
    std::ofstream f(path, std::ios::binary);
    uint64_t n = 12;
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << "{\"x\": [1, 22";  // 12 bytes of invalid JSON
  }
  std::string msg = error_of([&] { SafetensorsReader r(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("JSON"), std::string::npos) << msg;
  {
    std::ofstream f(path, std::ios::binary);
    uint64_t n = 1000000;  // longer than the file
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << "{}";
  }
  msg = error_of([&] { SafetensorsReader r(path); });
  EXPECT_NE(msg.find("header length"), std::string::npos) << msg;
  {
    std::ofstream f(path, std::ios::binary);
    std::string h = R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})";
    uint64_t n = h.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << h << std::string(24, '\0');
  }
  msg = error_of([&] { SafetensorsReader r(path); });
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;  // 20 bytes for a [2,3] F32 tensor
}

TEST(Safetensors, MissingTensorNamesFileAndTensor) {
  std::string path = kDir + "/st_missing.safetensors";
  write_safetensors(path, {{"present", at::ones({1})}});
  SafetensorsReader r(path);
  std::string msg = error_of([&] { r.read("absent.weight"); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("absent.weight"), std::string::npos) << msg;
}

}  // namespace
}  // namespace zerorl
