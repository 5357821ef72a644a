// HDF5 files holding tensors, strings and numbers.
//
// Layout conventions: one dataset per tensor under a slash path
// ("model/layers.0.mlp.gate.weight" is a dataset named with dots inside group
// "model"); attributes hold scalars and strings.  bfloat16 and float16 are
// stored as uint16 with an attribute "zerorl_dtype" so they round-trip
// bit-exactly; everything else uses the native HDF5 type.
//
// Contract: every failure throws zerorl::Error naming the file and object
// and, where HDF5 reports one, the reason: the operating system's when a
// system call failed ("No space left on device", "Permission denied"),
// else HDF5's innermost description.  HDF5's own stderr error stack is
// silenced.  An H5File is not thread-safe.  Files are closed by the
// destructor (which cannot report a failure) or by close(), which throws
// when the last buffered writes fail; flush() forces data to disk.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace zerorl {

class H5File {
 public:
  enum class Mode { kRead, kCreate /* truncates */, kReadWrite };
  H5File(const std::string& path, Mode mode);
  ~H5File();
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;

  const std::string& path() const { return path_; }

  // Tensors (any dtype zerorl uses: f32 f64 bf16 f16 i64 i32 u8 bool).
  void write_tensor(const std::string& name, const at::Tensor& t);
  at::Tensor read_tensor(const std::string& name) const;  // CPU tensor
  bool exists(const std::string& name) const;
  // Names of datasets directly under a group ("" = root), sorted.
  std::vector<std::string> list(const std::string& group = "") const;

  // Attributes on the root ("" ) or on a group/dataset.
  void write_attr(const std::string& obj, const std::string& key, const std::string& value);
  void write_attr(const std::string& obj, const std::string& key, int64_t value);
  void write_attr(const std::string& obj, const std::string& key, double value);
  std::string read_attr_string(const std::string& obj, const std::string& key) const;
  int64_t read_attr_int(const std::string& obj, const std::string& key) const;
  double read_attr_double(const std::string& obj, const std::string& key) const;
  bool has_attr(const std::string& obj, const std::string& key) const;

  // Raw byte blobs (e.g. serialized state), stored as uint8 datasets.
  void write_bytes(const std::string& name, const std::string& bytes);
  std::string read_bytes(const std::string& name) const;

  // Every attribute of every object (root "" and each group and dataset),
  // sorted by (object, name): its stored type as "<class>:<size>" and its
  // raw bytes in that type.  For checksums that must cover attributes.
  struct Attr {
    std::string object, name, type, bytes;
  };
  std::vector<Attr> attributes() const;

  void flush();
  void close();  // idempotent; later calls on this H5File throw

 private:
  long long id_ = -1;  // hid_t
  std::string path_;
};

}  // namespace zerorl
