// TensorBoard event files: the `tfevents` format that TensorBoard, TensorFlow
// and PyTorch's SummaryWriter read and write, for a run's metrics,
// evaluations and sample tables (trainer/run_dir.h writes them under
// runs/<name>/tb/ when the recipe says `logging.tensorboard: true`).  Its own
// library, zr_core_tensorboard, without LibTorch: the torch wheel ships
// protobuf headers of another version, which must not meet Debian's.
//
// A file is named events.out.tfevents.<unix seconds>.<host>.<pid>.<n> and is
// a sequence of records
//   uint64 length | uint32 masked CRC-32C(length) | data | uint32 masked CRC-32C(data)
// (little-endian; masked = rotate right 15 + 0xa282ead8), each data a
// serialized tensorboard.Event (core/tensorboard_event.proto, TensorBoard's
// own schema).  The first event of a file holds file_version "brain.Event:2".
//
//   * Scalars: one Event per call, one Summary.Value per metric, tagged with
//     the metric's name; the value is a DT_FLOAT scalar tensor with the
//     scalars plugin's metadata, what TF2's tf.summary.scalar writes.  Not
//     float64: TensorBoard's default data server (tensorboard-data-server,
//     `--load_fast`) shows no DT_DOUBLE scalars at all (seen with 2.21 /
//     0.7.2).  So a value reads back as the float32 nearest the double in
//     metrics.jsonl; NaN and infinities are written as they are.
//   * Text tables: a DT_STRING tensor [rows, columns] with the text plugin's
//     metadata; TensorBoard's Text tab shows it as a table, each cell
//     rendered as Markdown.  Cells must be valid UTF-8 (TensorBoard decodes
//     them so).
//
// Every add_* call ends with the record flushed to the OS (fflush), so a live
// `tensorboard --logdir` sees each step as it is written.  A crash can leave
// a torn last record; read_event_records stops before it.  Not thread-safe.
// I/O errors throw zerorl::Error naming the file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace zerorl {

// CRC-32C (Castagnoli) of the bytes, from Intel ISA-L (crc32_iscsi); the
// check value of "123456789" is 0xe3069283.
uint32_t crc32c(const void* data, size_t size);
// The TFRecord mask of a CRC-32C: ((c >> 15) | (c << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t size);

// `text` as a Markdown indented code block (four spaces before each line), so
// TensorBoard shows it verbatim: no emphasis, no HTML, line breaks kept.
std::string markdown_code_block(const std::string& text);

class EventFileWriter {
 public:
  // Creates `dir` if needed and a new events file in it (never reopens an
  // existing one), and writes the file_version event.
  explicit EventFileWriter(const std::string& dir);
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  const std::string& path() const { return path_; }

  // One event at `step` with a scalar per entry, tag = prefix + key.
  void add_scalars(int64_t step, const std::map<std::string, double>& values,
                   const std::string& prefix = "");
  // One event at `step` with a [rows, columns] text table under `tag`; every
  // row must have the same number of cells.
  void add_text_table(int64_t step, const std::string& tag,
                      const std::vector<std::vector<std::string>>& rows);
  // SessionLog START at `step`, written when a session (process) starts.
  // TensorBoard's Python reader ignores a run's first START; on a later one
  // it discards every event with step >= `step` it loaded before (a live
  // view of a run that crashed and resumed from an earlier checkpoint).
  void add_session_start(int64_t step);

 private:
  void write_event(const std::string& serialized);
  std::string path_;
  std::FILE* file_ = nullptr;
};

// The records of an events file whose CRCs check, in order.  Reading stops
// at the first short or corrupt record: `error` then says which record and
// byte offset, and everything from there on is left out.
struct EventRecords {
  std::vector<std::string> records;  // serialized tensorboard.Event each
  std::string error;                 // empty when the whole file read cleanly
};
EventRecords read_event_records(const std::string& path);

// One record as it is written to a file: the framing above around `data`.
std::string event_record(const std::string& data);

// The step of a serialized tensorboard.Event; throws if it does not parse.
int64_t event_step(const std::string& data);

// Whether TensorBoard reads a file of this name as an events file (the name
// contains "tfevents").
bool is_events_file_name(const std::string& file_name);

}  // namespace zerorl
