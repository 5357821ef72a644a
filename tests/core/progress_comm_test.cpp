#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/comm.h"
#include "core/error.h"
#include "core/progress.h"

using namespace zerorl;

TEST(Progress, DurationsAndLineFormat) {
  EXPECT_EQ(Progress::format_duration(12.4), "12s");
  EXPECT_EQ(Progress::format_duration(185), "3m05s");
  EXPECT_EQ(Progress::format_duration(3725), "1h02m");
  EXPECT_EQ(Progress::format_duration(NAN), "?");
  Progress p("train", 10);
  std::string line = p.render(5, {{"reward", 0.4125}, {"len", 52}}, 10);
  EXPECT_NE(line.find("[#####.....] 5/10"), std::string::npos) << line;
  EXPECT_NE(line.find("reward 0.4125"), std::string::npos) << line;
  EXPECT_NE(line.find("len 52"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA"), std::string::npos) << line;
  p.finish();
}

TEST(Comm, SingleProcessCollectivesAreIdentities) {
  auto comm = make_comm("single");
  EXPECT_EQ(comm->size(), 1);
  at::Tensor t = at::arange(5, at::kFloat);
  comm->allreduce(t, ReduceOp::kMean);
  EXPECT_TRUE(at::equal(t, at::arange(5, at::kFloat)));
  EXPECT_EQ(comm->allgather(t).sizes(), at::IntArrayRef({1, 5}));
  EXPECT_DOUBLE_EQ(comm->allreduce_scalar(2.5), 2.5);
  // Without a launcher, auto picks single; an unknown backend is named.
  if (!mpi_active()) EXPECT_EQ(make_comm("auto")->backend(), "single");
  try {
    make_comm("gloo");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gloo"), std::string::npos);
  }
  EXPECT_THROW(make_comm("mpi"), Error);  // not under mpirun
}
