#include "core/safetensors.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace zerorl {

using nlohmann::json;

namespace {

struct DtypeName {
  const char* name;
  at::ScalarType type;
};
const DtypeName kDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16},
    {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
    {"U8", at::kByte},    {"BOOL", at::kBool},
};

bool dtype_from_name(const std::string& s, at::ScalarType* out) {
  for (const auto& d : kDtypes)
    if (s == d.name) return *out = d.type, true;
  return false;
}

const char* dtype_to_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (t == d.type) return d.name;
  ZR_THROW("safetensors: dtype ", c10::toString(t), " is not supported");
}

uint64_t file_size(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  ZR_CHECK(f.good(), path, ": cannot open safetensors file");
  return static_cast<uint64_t>(f.tellg());
}

}  // namespace

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  uint64_t size = file_size(path);
  ZR_CHECK(size >= 8, path, ": truncated safetensors file (", size, " bytes, no header length)");
  std::ifstream f(path, std::ios::binary);
  unsigned char len_bytes[8];
  f.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  ZR_CHECK(n > 0 && n <= size - 8, path, ": bad safetensors header length ", n, " (file has ", size,
           " bytes)");
  ZR_CHECK(n < (uint64_t(100) << 20), path, ": safetensors header of ", n,
           " bytes is implausibly large");
  std::string header(n, '\0');
  f.read(header.data(), static_cast<std::streamsize>(n));
  ZR_CHECK(f.good(), path, ": cannot read the safetensors header");
  json j;
  try {
    j = json::parse(header);
  } catch (const std::exception& e) {
    ZR_THROW(path, ": safetensors header is not valid JSON: ", e.what());
  }
  ZR_CHECK(j.is_object(), path, ": safetensors header must be a JSON object");
  data_start_ = 8 + n;
  uint64_t data_size = size - data_start_;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (it->is_object())
        for (auto m = it->begin(); m != it->end(); ++m)
          metadata_[m.key()] = m->is_string() ? m->get<std::string>() : m->dump();
      continue;
    }
    const json& v = it.value();
    ZR_CHECK(
        v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
        path, ": tensor '", name, "': header entry needs dtype, shape and data_offsets");
    Entry e;
    std::string dt = v["dtype"].is_string() ? v["dtype"].get<std::string>() : v["dtype"].dump();
    ZR_CHECK(dtype_from_name(dt, &e.dtype), path, ": tensor '", name, "': unsupported dtype ", dt);
    try {
      e.shape = v["shape"].get<std::vector<int64_t>>();
      auto off = v["data_offsets"].get<std::vector<uint64_t>>();
      ZR_CHECK(off.size() == 2, path, ": tensor '", name, "': data_offsets must have 2 entries");
      e.begin = off[0], e.end = off[1];
    } catch (const zerorl::Error&) {
      throw;
    } catch (const std::exception& ex) {
      ZR_THROW(path, ": tensor '", name, "': malformed shape or data_offsets (", ex.what(), ")");
    }
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      ZR_CHECK(d >= 0, path, ": tensor '", name, "': negative dimension");
      numel *= static_cast<uint64_t>(d);
    }
    uint64_t want = numel * c10::elementSize(e.dtype);
    ZR_CHECK(e.begin <= e.end && e.end - e.begin == want, path, ": tensor '", name,
             "': data_offsets [", e.begin, ", ", e.end, ") hold ", e.end - e.begin,
             " bytes but shape and dtype need ", want);
    ZR_CHECK(e.end <= data_size, path, ": tensor '", name, "' ends at byte ", e.end,
             " of the data but the file has ", data_size, " data bytes (truncated file?)");
    entries_[name] = std::move(e);
  }
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> out;
  for (const auto& kv : entries_) out.push_back(kv.first);
  return out;
}

bool SafetensorsReader::has(const std::string& name) const { return entries_.count(name) > 0; }

const SafetensorsReader::Entry& SafetensorsReader::entry(const std::string& name) const {
  auto it = entries_.find(name);
  ZR_CHECK(it != entries_.end(), path_, ": tensor '", name, "' is missing");
  return it->second;
}

std::vector<int64_t> SafetensorsReader::shape(const std::string& name) const {
  return entry(name).shape;
}
at::ScalarType SafetensorsReader::dtype(const std::string& name) const { return entry(name).dtype; }

at::Tensor SafetensorsReader::read(const std::string& name) const {
  const Entry& e = entry(name);
  at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype));
  uint64_t nbytes = e.end - e.begin;
  if (nbytes == 0) return t;
  std::ifstream f(path_, std::ios::binary);
  ZR_CHECK(f.good(), path_, ": cannot open to read tensor '", name, "'");
  f.seekg(static_cast<std::streamoff>(data_start_ + e.begin));
  f.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(nbytes));
  ZR_CHECK(f.good() && static_cast<uint64_t>(f.gcount()) == nbytes, path_,
           ": short read of tensor '", name, "' (truncated file?)");
  return t;
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t0] : tensors) {
    ZR_CHECK(name != "__metadata__" && !header.contains(name), path,
             ": duplicate or reserved tensor name '", name, "'");
    at::Tensor t = t0.detach().to(at::kCPU).contiguous();
    uint64_t nbytes = t.nbytes();
    header[name] = {{"dtype", dtype_to_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(t);
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');  // align the data as the reference writer does
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  ZR_CHECK(f.good(), path, ": cannot create safetensors file");
  uint64_t n = h.size();
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  f.write(reinterpret_cast<const char*>(len_bytes), 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& t : data)
    f.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  f.flush();
  ZR_CHECK(f.good(), path, ": write failed (disk full?)");
}

}  // namespace zerorl
