// core/tensorboard.h: CRC-32C against published check values, the record
// framing read back, and a torn or corrupt record found.  That TensorBoard
// itself reads the files is tests/trainer/tensorboard_oracle_test.cpp.
#include "core/tensorboard.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace fs = std::filesystem;

namespace zerorl {
namespace {

// A flat folder removed file by file: libtorch.so's copy of
// std::filesystem::remove_all segfaults on a non-empty one (trainer/run_dir.h).
void remove_flat(const fs::path& d) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(d, ec)) files.push_back(e.path());
  for (const auto& f : files) fs::remove(f, ec);
  fs::remove(d, ec);
}

fs::path temp_dir(const std::string& tag) {
  fs::path d = fs::temp_directory_path() / ("zerorl_tb_" + tag + "_" + std::to_string(::getpid()));
  remove_flat(d);
  return d;
}

std::vector<int64_t> steps_of(const EventRecords& r) {
  std::vector<int64_t> out;
  for (const auto& rec : r.records) out.push_back(event_step(rec));
  return out;
}

TEST(TensorBoard, Crc32cMatchesPublishedCheckValues) {
  // The CRC catalogue's check value, and RFC 3720 (iSCSI) appendix B.4.
  EXPECT_EQ(crc32c("123456789", 9), 0xe3069283u);
  std::string zeros(32, '\0'), ones(32, '\xff'), inc(32, '\0');
  for (int i = 0; i < 32; ++i) inc[i] = static_cast<char>(i);
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8a9136aau);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62a8ab43u);
  EXPECT_EQ(crc32c(inc.data(), 32), 0x46dd794eu);
  EXPECT_EQ(crc32c("", 0), 0u);
  const uint32_t c = 0xe3069283u;
  EXPECT_EQ(masked_crc32c("123456789", 9), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TensorBoard, WrittenRecordsReadBackInOrder) {
  fs::path d = temp_dir("roundtrip");
  std::string path;
  {
    EventFileWriter w(d.string());
    path = w.path();
    EXPECT_NE(fs::path(path).filename().string().find("events.out.tfevents."), std::string::npos);
    w.add_scalars(1, {{"reward/mean", 0.25}, {"loss/kl", 1e-3}});
    w.add_scalars(2, {{"pass_at_1", 0.5}}, "eval/");
    w.add_text_table(2, "samples", {{"index", "completion"}, {"0", "    <think>"}});
    w.add_session_start(3);
    // Flushed at every call: the bytes are in the file before the writer closes.
    EventRecords live = read_event_records(path);
    EXPECT_EQ(live.error, "");
    EXPECT_EQ(live.records.size(), 5u);
    EXPECT_THROW(w.add_text_table(4, "t", {{"a", "b"}, {"c"}}), Error);
  }
  EventRecords r = read_event_records(path);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(steps_of(r), (std::vector<int64_t>{0, 1, 2, 2, 3}));
  // A second writer in the same folder never appends to the first file.
  EventFileWriter w2(d.string());
  EXPECT_NE(w2.path(), path);
  remove_flat(d);
}

TEST(TensorBoard, TornOrCorruptRecordStopsTheReader) {
  fs::path d = temp_dir("torn");
  std::string path;
  {
    EventFileWriter w(d.string());
    path = w.path();
    for (int64_t s = 1; s <= 3; ++s) w.add_scalars(s, {{"x", static_cast<double>(s)}});
  }
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
  }
  const size_t whole = bytes.size();
  auto rewrite = [&](const std::string& b) { std::ofstream(path, std::ios::binary) << b; };
  rewrite(bytes.substr(0, whole - 3));  // the last record cut short
  EventRecords r = read_event_records(path);
  EXPECT_EQ(steps_of(r), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_NE(r.error.find("record 3"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("cut short"), std::string::npos) << r.error;
  std::string flipped = bytes;
  flipped[whole - 6] ^= 0x01;  // a data byte of the last record
  rewrite(flipped);
  r = read_event_records(path);
  EXPECT_EQ(r.records.size(), 3u);
  EXPECT_NE(r.error.find("data CRC"), std::string::npos) << r.error;
  remove_flat(d);
}

TEST(TensorBoard, MarkdownCodeBlockIndentsEveryLine) {
  EXPECT_EQ(markdown_code_block("a\n<b>*c*"), "    a\n    <b>*c*");
  EXPECT_EQ(markdown_code_block(""), "    ");
  EXPECT_TRUE(is_events_file_name("events.out.tfevents.1.host.2.0"));
  EXPECT_FALSE(is_events_file_name("metrics.jsonl"));
}

}  // namespace
}  // namespace zerorl
