#include "core/h5.h"
#include "core/error.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace zerorl;
namespace fs = std::filesystem;

namespace {
fs::path tmp_file(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("zerorl_h5_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}
}  // namespace

TEST(H5, TensorsOfEveryDtypeRoundTripBitExactly) {
  auto path = tmp_file("dtypes.h5").string();
  at::manual_seed(0);
  std::vector<std::pair<std::string, at::Tensor>> ts = {
      {"model/layers.0.w", at::randn({3, 4})},
      {"model/layers.0.b", at::randn({4}, at::kDouble)},
      {"bf", at::randn({5, 2}).to(at::kBFloat16)},
      {"half", at::randn({7}).to(at::kHalf)},
      {"ids", at::randint(0, 1000, {2, 3}, at::kLong)},
      {"i32", at::randint(-5, 5, {6}, at::kInt)},
      {"mask", at::rand({4}) > 0.5},
      {"scalar", at::scalar_tensor(3.5)},
      {"empty", at::zeros({0, 3})},
  };
  {
    H5File f(path, H5File::Mode::kCreate);
    for (auto& [n, t] : ts) f.write_tensor(n, t);
    f.write_attr("", "step", int64_t{12});
    f.write_attr("", "lr", 3e-4);
    f.write_attr("", "recipe", std::string("trainer:\n  lr: 1\n"));
    f.write_attr("model", "arch", std::string("deepseek_v3"));
    f.write_bytes("blob", std::string("a\0b", 3));
  }
  H5File f(path, H5File::Mode::kRead);
  for (auto& [n, t] : ts) {
    at::Tensor back = f.read_tensor(n);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << n;
    EXPECT_EQ(back.sizes(), t.sizes()) << n;
    EXPECT_TRUE(at::equal(back, t)) << n;
  }
  EXPECT_EQ(f.read_attr_int("", "step"), 12);
  EXPECT_DOUBLE_EQ(f.read_attr_double("", "lr"), 3e-4);
  EXPECT_EQ(f.read_attr_string("", "recipe"), "trainer:\n  lr: 1\n");
  EXPECT_EQ(f.read_attr_string("model", "arch"), "deepseek_v3");
  EXPECT_EQ(f.read_bytes("blob"), std::string("a\0b", 3));
  EXPECT_EQ(f.list("model"), (std::vector<std::string>{"layers.0.b", "layers.0.w"}));
  EXPECT_TRUE(f.exists("model/layers.0.w"));
  EXPECT_FALSE(f.exists("nope/x"));
}

TEST(H5, MissingObjectsAreNamed) {
  auto path = tmp_file("missing.h5").string();
  {
    H5File f(path, H5File::Mode::kCreate);
    f.write_tensor("a", at::zeros({1}));
  }
  H5File f(path, H5File::Mode::kRead);
  try {
    f.read_tensor("model/w");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model/w"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  EXPECT_THROW(f.read_attr_int("", "step"), Error);
}

TEST(H5, TruncatedOrGarbageFilesAreRefusedWithTheirName) {
  auto path = tmp_file("trunc.h5").string();
  {
    H5File f(path, H5File::Mode::kCreate);
    f.write_tensor("w", at::randn({256, 256}));
  }
  auto size = fs::file_size(path);
  fs::resize_file(path, size / 3);
  bool failed = false;
  try {
    H5File f(path, H5File::Mode::kRead);
    f.read_tensor("w");
  } catch (const Error& e) {
    failed = true;
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_TRUE(failed);
  auto junk = tmp_file("junk.h5").string();
  std::ofstream(junk) << "not hdf5 at all";
  EXPECT_THROW(H5File(junk, H5File::Mode::kRead), Error);
  EXPECT_THROW(H5File("/nonexistent/dir/x.h5", H5File::Mode::kRead), Error);
}
