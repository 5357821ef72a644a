// The step's length quantiles (trainer/metric_reducer.h): nearest rank over
// the whole batch from a histogram of sums, the same names whatever the
// lengths, exact for one-token bins and a bin's lower edge beyond 1023.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "trainer/metric_reducer.h"

namespace zerorl {
namespace {

std::map<std::string, double> quantiles(const std::vector<std::vector<int64_t>>& ranks,
                                        int64_t max_len) {
  // Ranks' reducers sum their bins on reduce(): adding every rank's lengths
  // to one reducer is the same sum.
  MetricReducer m;
  for (const auto& lengths : ranks) add_length_histogram(m, lengths, max_len);
  auto out = m.local();
  length_quantiles(out, max_len);
  return out;
}

TEST(LengthQuantiles, NearestRankOverTheWholeBatch) {
  // Sorted 1 1 2 3 4 5 9: p50 is the ceil(3.5) = 4th, p90 the ceil(6.3) = 7th.
  auto q = quantiles({{3, 1, 4, 1, 5, 9, 2}}, 320);
  EXPECT_EQ(q.at("response/length_p50"), 3);
  EXPECT_EQ(q.at("response/length_p90"), 9);
  for (const auto& [k, v] : q) EXPECT_EQ(k.rfind("response/length_hist/", 0), std::string::npos);
  // Spread over two ranks: 1 2 3 10 20 30 40 -> 4th = 10, 7th = 40.
  q = quantiles({{1, 2, 3}, {40, 30, 20, 10}}, 320);
  EXPECT_EQ(q.at("response/length_p50"), 10);
  EXPECT_EQ(q.at("response/length_p90"), 40);
  // Ten lengths 1..10: the 5th and the 9th.
  q = quantiles({{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}}, 320);
  EXPECT_EQ(q.at("response/length_p50"), 5);
  EXPECT_EQ(q.at("response/length_p90"), 9);
}

TEST(LengthQuantiles, SameNamesOnEveryRankAndWideBinsBeyond1023) {
  MetricReducer a, b;
  add_length_histogram(a, {1, 2}, 320);
  add_length_histogram(b, {300}, 320);
  auto la = a.local(), lb = b.local();
  ASSERT_EQ(la.size(), 321u);  // bins 0..320
  for (auto ia = la.begin(), ib = lb.begin(); ia != la.end(); ++ia, ++ib)
    EXPECT_EQ(ia->first, ib->first);
  // max_len 3000: bins of 3 tokens; 1000 falls in [999, 1002).
  auto q = quantiles({{1000, 1000, 2}}, 3000);
  EXPECT_EQ(q.at("response/length_p50"), 999);
  EXPECT_EQ(q.at("response/length_p90"), 999);
  MetricReducer c;
  add_length_histogram(c, {}, 3000);
  EXPECT_EQ(c.local().size(), 1001u);  // bins 0..1000
}

}  // namespace
}  // namespace zerorl
