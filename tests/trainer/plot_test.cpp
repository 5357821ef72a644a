#include "trainer/plot.h"

#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "trainer/run_dir.h"

namespace fs = std::filesystem;

namespace zerorl {
namespace {

struct Image {
  int w = 0, h = 0;
  std::vector<uint8_t> rgb;
  bool is(int x, int y, uint8_t r, uint8_t g, uint8_t b) const {
    const uint8_t* p = &rgb[(static_cast<size_t>(y) * w + x) * 3];
    return p[0] == r && p[1] == g && p[2] == b;
  }
};

// Decodes with libpng itself: a file libpng cannot read fails the test.
Image decode_png(const std::string& path) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  Image out;
  if (!png_image_begin_read_from_file(&img, path.c_str())) {
    ADD_FAILURE() << path << ": " << img.message;
    return out;
  }
  img.format = PNG_FORMAT_RGB;
  out.w = static_cast<int>(img.width);
  out.h = static_cast<int>(img.height);
  out.rgb.resize(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, out.rgb.data(), 0, nullptr))
    ADD_FAILURE() << path << ": " << img.message;
  return out;
}

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class PlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::temp_directory_path() / ("zr_plot_" + std::to_string(::getpid()))).string();
    remove_tree(root_);
    RunDir run(root_, "p", "run: {name: p}\n", RunDir::Mode::kFresh);
    dir_ = run.path();
    // 30 steps: reward rises linearly, KL falls, one NaN gap in clip_frac_low.
    for (int s = 1; s <= 30; ++s) {
      std::map<std::string, double> m = {{"reward/mean", 0.1 + 0.02 * s},
                                         {"loss/kl", 0.05 / s},
                                         {"response/length_mean", 40 + s},
                                         {"loss/clip_frac_low", s == 5 ? std::nan("") : 0.01},
                                         {"loss/clip_frac_high", 0.02 + 0.001 * s}};
      run.append_metrics(s, m, {{"step_seconds", 2.0}});
    }
    run.append_eval(0, {{"pass_at_1", 0.05}, {"format_rate", 0.1}});
    run.append_eval(30, {{"pass_at_1", 0.55}, {"format_rate", 0.97}});
  }
  void TearDown() override { remove_tree(root_); }
  std::string root_, dir_;
};

constexpr uint8_t kBlue[3] = {31, 119, 180}, kOrange[3] = {255, 127, 14}, kText[3] = {40, 40, 40};

int count_color(const Image& im, const uint8_t c[3], int x0, int x1, int y0, int y1) {
  int n = 0;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) n += im.is(x, y, c[0], c[1], c[2]);
  return n;
}

TEST_F(PlotTest, DrawsTheChartsWhoseMetricsExist) {
  std::vector<std::string> written = plot_run(dir_);
  std::vector<std::string> names;
  for (const auto& p : written) names.push_back(fs::path(p).stem().string());
  // No entropy or accuracy metric was logged: those charts are skipped.
  EXPECT_EQ(names,
            (std::vector<std::string>{"reward", "response_length", "kl", "clip_fraction", "eval"}));
  for (const auto& p : written) {
    EXPECT_EQ(fs::path(p).parent_path().string(), dir_ + "/plots");
    Image im = decode_png(p);
    EXPECT_EQ(im.w, 800);
    EXPECT_EQ(im.h, 450);
    EXPECT_TRUE(im.is(0, 0, 255, 255, 255)) << "background must be white: " << p;
    EXPECT_GT(count_color(im, kBlue, 0, im.w, 0, im.h), 200) << "no line drawn in " << p;
    EXPECT_GT(count_color(im, kText, 0, im.w, 0, 40), 50) << "no title text in " << p;
  }
  // Two series in the clip chart: blue and orange.
  Image clip = decode_png(dir_ + "/plots/clip_fraction.png");
  EXPECT_GT(count_color(clip, kOrange, 0, clip.w, 0, clip.h), 200);
}

TEST_F(PlotTest, TheRewardLineRisesFromLeftToRight) {
  plot_run(dir_);
  Image im = decode_png(dir_ + "/plots/reward.png");
  int xmin = im.w, xmax = -1;
  for (int y = 0; y < im.h; ++y)
    for (int x = 0; x < im.w; ++x)
      if (im.is(x, y, kBlue[0], kBlue[1], kBlue[2]))
        xmin = std::min(xmin, x), xmax = std::max(xmax, x);
  ASSERT_GT(xmax - xmin, 500) << "the line should span most of the width";
  // The lowest blue pixel near the left edge vs the highest near the right
  // edge (the legend's blue swatch is near the top-left, so it cannot fake this).
  int left_lowest = -1, right_highest = im.h;
  for (int y = 0; y < im.h; ++y)
    for (int x = 0; x < im.w; ++x) {
      if (!im.is(x, y, kBlue[0], kBlue[1], kBlue[2])) continue;
      if (x <= xmin + 5) left_lowest = std::max(left_lowest, y);
      if (x >= xmax - 5) right_highest = std::min(right_highest, y);
    }
  EXPECT_GT(left_lowest - right_highest, 200) << "rising reward must go up the image";

  // The same metrics give the same bytes.
  std::string before = slurp(dir_ + "/plots/reward.png");
  plot_run(dir_);
  EXPECT_EQ(before, slurp(dir_ + "/plots/reward.png"));
}

TEST_F(PlotTest, CustomChartsAndAlternatives) {
  std::vector<ChartSpec> charts = {
      parse_chart_spec("timing=time/step_seconds"), parse_chart_spec("kl_any=kl/mean|loss/kl"),
      parse_chart_spec("missing=no/such,key"), parse_chart_spec("fmt=eval:format_rate")};
  std::vector<std::string> written = plot_run(dir_, charts);
  ASSERT_EQ(written.size(), 3u);
  EXPECT_EQ(fs::path(written[0]).filename(), "timing.png");
  EXPECT_EQ(fs::path(written[1]).filename(), "kl_any.png");
  EXPECT_EQ(fs::path(written[2]).filename(), "fmt.png");
  EXPECT_FALSE(fs::exists(dir_ + "/plots/missing.png"));
  EXPECT_THROW(parse_chart_spec("no_equals"), Error);
  EXPECT_THROW(parse_chart_spec("=a"), Error);
  EXPECT_THROW(parse_chart_spec("a="), Error);
}

TEST_F(PlotTest, MissingOrBadMetricsAreErrors) {
  EXPECT_THROW(plot_run(root_ + "/nope"), Error);
  std::ofstream(dir_ + "/metrics.jsonl", std::ios::app) << "{not json\n";
  try {
    plot_run(dir_);
    ADD_FAILURE() << "a broken metrics line was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:31"), std::string::npos) << e.what();
  }
}

TEST(Plot, SinglePointAndConstantSeriesStillDraw) {
  std::string p =
      (fs::temp_directory_path() / ("zr_plot_single_" + std::to_string(::getpid()) + ".png"))
          .string();
  write_line_chart_png(p, "one point", "step", {{"x", {3}, {0.5}}});
  Image im = decode_png(p);
  EXPECT_GT(count_color(im, kBlue, 60, im.w, 50, im.h - 50), 10);  // the dot, not just the legend
  write_line_chart_png(p, "flat", "step", {{"x", {1, 2, 3}, {2, 2, 2}}});
  EXPECT_GT(count_color(decode_png(p), kBlue, 0, 800, 0, 450), 200);
  EXPECT_THROW(write_line_chart_png(p, "bad", "step", {{"x", {1, 2}, {1}}}), Error);
  // Ranges below a double's resolution at that magnitude, and huge ones,
  // must finish (no tick loop that cannot advance) and still draw.
  write_line_chart_png(p, "tiny range", "step", {{"x", {1, 2, 3}, {1e10, 1e10 + 2e-6, 1e10}}});
  EXPECT_GT(count_color(decode_png(p), kBlue, 0, 800, 0, 450), 100);
  write_line_chart_png(p, "huge", "step", {{"x", {1, 2}, {-1.7e308, 1.7e308}}});
  EXPECT_GT(count_color(decode_png(p), kBlue, 0, 800, 0, 450), 100);
  fs::remove(p);
}

}  // namespace
}  // namespace zerorl
