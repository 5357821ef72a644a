#include "core/tensorboard.h"

#include <isa-l/crc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "tensorboard_event.pb.h"  // generated into build/core/

namespace fs = std::filesystem;

namespace zerorl {

namespace {

constexpr uint32_t kCrcMaskDelta = 0xa282ead8u;
constexpr size_t kHeaderBytes = 12;  // uint64 length + uint32 masked CRC of it
constexpr size_t kFooterBytes = 4;   // uint32 masked CRC of the data

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ZR_CHECK(in, "cannot read '", path, "': ", std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  // ISA-L's crc32_iscsi neither inverts its input nor its result, and takes
  // an int length: chain chunks, invert at both ends.
  uint32_t crc = 0xffffffffu;
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  while (size > 0) {
    const int n = static_cast<int>(std::min<size_t>(size, INT_MAX));
    crc = crc32_iscsi(p, n, crc);
    p += n;
    size -= static_cast<size_t>(n);
  }
  return crc ^ 0xffffffffu;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t c = crc32c(data, size);
  return ((c >> 15) | (c << 17)) + kCrcMaskDelta;
}

bool is_events_file_name(const std::string& file_name) {
  return file_name.find("tfevents") != std::string::npos;
}

std::string event_record(const std::string& data) {
  std::string rec;
  rec.reserve(kHeaderBytes + data.size() + kFooterBytes);
  put_le(rec, data.size(), 8);
  put_le(rec, masked_crc32c(rec.data(), 8), 4);
  rec += data;
  put_le(rec, masked_crc32c(data.data(), data.size()), 4);
  return rec;
}

std::string markdown_code_block(const std::string& text) {
  std::string out = "    ";
  for (char ch : text) {
    out.push_back(ch);
    if (ch == '\n') out += "    ";
  }
  return out;
}

// ---- writing -----------------------------------------------------------------------

EventFileWriter::EventFileWriter(const std::string& dir) {
  static std::atomic<int> counter{0};
  std::error_code ec;
  fs::create_directories(dir, ec);
  ZR_CHECK(!ec, "cannot create '", dir, "': ", ec.message());
  const double now = unix_seconds();
  path_ = (fs::path(dir) / str_cat("events.out.tfevents.", static_cast<int64_t>(now), ".",
                                   host_name(), ".", ::getpid(), ".", counter++))
              .string();
  file_ = std::fopen(path_.c_str(), "wbx");  // x: never append to an existing file
  ZR_CHECK(file_, "cannot create '", path_, "': ", std::strerror(errno));
  tensorboard::Event e;
  e.set_wall_time(now);
  e.set_step(0);
  e.set_file_version("brain.Event:2");
  write_event(e.SerializeAsString());
}

EventFileWriter::~EventFileWriter() {
  if (file_) std::fclose(file_);
}

void EventFileWriter::write_event(const std::string& data) {
  const std::string rec = event_record(data);
  bool ok = std::fwrite(rec.data(), 1, rec.size(), file_) == rec.size();
  ok = std::fflush(file_) == 0 && ok;
  ZR_CHECK(ok, "cannot write '", path_, "': ", std::strerror(errno));
}

void EventFileWriter::add_scalars(int64_t step, const std::map<std::string, double>& values,
                                  const std::string& prefix) {
  if (values.empty()) return;
  tensorboard::Event e;
  e.set_wall_time(unix_seconds());
  e.set_step(step);
  auto* summary = e.mutable_summary();
  for (const auto& [key, v] : values) {
    auto* val = summary->add_value();
    val->set_tag(prefix + key);
    auto* md = val->mutable_metadata();
    md->mutable_plugin_data()->set_plugin_name("scalars");
    md->set_data_class(tensorboard::DATA_CLASS_SCALAR);
    auto* t = val->mutable_tensor();
    t->set_dtype(tensorboard::DT_FLOAT);  // see the header: not DT_DOUBLE
    t->mutable_tensor_shape();            // rank 0
    t->add_float_val(static_cast<float>(v));
  }
  write_event(e.SerializeAsString());
}

void EventFileWriter::add_text_table(int64_t step, const std::string& tag,
                                     const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  const size_t cols = rows[0].size();
  tensorboard::Event e;
  e.set_wall_time(unix_seconds());
  e.set_step(step);
  auto* val = e.mutable_summary()->add_value();
  val->set_tag(tag);
  auto* md = val->mutable_metadata();
  md->mutable_plugin_data()->set_plugin_name("text");
  md->set_data_class(tensorboard::DATA_CLASS_TENSOR);
  auto* t = val->mutable_tensor();
  t->set_dtype(tensorboard::DT_STRING);
  t->mutable_tensor_shape()->add_dim()->set_size(static_cast<int64_t>(rows.size()));
  t->mutable_tensor_shape()->add_dim()->set_size(static_cast<int64_t>(cols));
  for (const auto& row : rows) {
    ZR_CHECK(row.size() == cols, "text table '", tag, "': a row has ", row.size(),
             " cells, the first has ", cols);
    for (const auto& cell : row) t->add_string_val(cell);
  }
  write_event(e.SerializeAsString());
}

void EventFileWriter::add_session_start(int64_t step) {
  tensorboard::Event e;
  e.set_wall_time(unix_seconds());
  e.set_step(step);
  e.mutable_session_log()->set_status(tensorboard::SessionLog::START);
  write_event(e.SerializeAsString());
}

// ---- reading and resume --------------------------------------------------------------

EventRecords read_event_records(const std::string& path) {
  const std::string bytes = read_bytes(path);
  EventRecords out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t index = out.records.size();
    if (bytes.size() - pos < kHeaderBytes) {
      out.error = str_cat(path, ": record ", index, " at byte ", pos, " is cut short");
      break;
    }
    const uint64_t len = get_le(bytes.data() + pos, 8);
    if (get_le(bytes.data() + pos + 8, 4) != masked_crc32c(bytes.data() + pos, 8)) {
      out.error = str_cat(path, ": record ", index, " at byte ", pos, ": length CRC mismatch");
      break;
    }
    if (bytes.size() - pos - kHeaderBytes < len + kFooterBytes) {
      out.error = str_cat(path, ": record ", index, " at byte ", pos, " is cut short");
      break;
    }
    const char* data = bytes.data() + pos + kHeaderBytes;
    if (get_le(data + len, 4) != masked_crc32c(data, len)) {
      out.error = str_cat(path, ": record ", index, " at byte ", pos, ": data CRC mismatch");
      break;
    }
    out.records.emplace_back(data, len);
    pos += kHeaderBytes + len + kFooterBytes;
  }
  return out;
}

int64_t event_step(const std::string& data) {
  tensorboard::Event e;
  ZR_CHECK(e.ParseFromString(data), "an events-file record that is not a tensorboard.Event");
  return e.step();
}

}  // namespace zerorl
