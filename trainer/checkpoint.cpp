#include "trainer/checkpoint.h"

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "core/config.h"
#include "core/error.h"
#include "core/h5.h"
#include "core/log.h"

namespace fs = std::filesystem;

namespace zerorl {

CheckpointConfig CheckpointConfig::from(const ConfigNode& n) {
  CheckpointConfig c;
  c.every = n.get<long>("every", c.every);
  c.keep_last = n.get<long>("keep_last", c.keep_last);
  return c;
}

namespace {

// Format 2 adds every attribute to the checksum (hash_attributes); format 1
// files (tensors and header only) still load and verify.  Format 3 adds row
// shards (the manifest's "shards"); a file without them is written as 2.
constexpr int64_t kFormat = 3;
constexpr int64_t kFormatNoShards = 2;
constexpr int64_t kOldestFormat = 1;
const char* const kGroups[] = {"model", "optimizer", "reference"};
const char* const kManifest = "meta/manifest";
const char* const kRecipe = "meta/recipe_yaml";

// ---------------------------------------------------------------- hashing --

// Streams records into XXH3-64.  Every field is length-prefixed so that no two
// different checkpoints feed the same byte sequence.
class Hasher {
 public:
  Hasher() : st_(XXH3_createState()) {
    ZR_CHECK(st_ != nullptr, "XXH3_createState failed (out of memory)");
    XXH3_64bits_reset(st_);
  }
  ~Hasher() { XXH3_freeState(st_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void u64(uint64_t v) { XXH3_64bits_update(st_, &v, sizeof v); }
  void bytes(const void* p, size_t n) {
    u64(n);
    if (n > 0) XXH3_64bits_update(st_, p, n);
  }
  void str(const std::string& s) { bytes(s.data(), s.size()); }
  // One dataset: name, dtype, shape, raw bytes.  t must be CPU-contiguous.
  void tensor(const std::string& name, const at::Tensor& t) {
    str(name);
    str(c10::toString(t.scalar_type()));
    u64(static_cast<uint64_t>(t.dim()));
    for (int64_t s : t.sizes()) u64(static_cast<uint64_t>(s));
    bytes(t.numel() ? t.data_ptr() : nullptr, t.nbytes());
  }
  uint64_t digest() const { return XXH3_64bits_digest(st_); }

 private:
  XXH3_state_t* st_;
};

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

at::Tensor cpu_contiguous(const at::Tensor& t) { return t.detach().to(at::kCPU).contiguous(); }

at::Tensor bytes_tensor(const std::string& s) {
  at::Tensor t = at::empty({static_cast<int64_t>(s.size())}, at::TensorOptions().dtype(at::kByte));
  if (!s.empty()) std::memcpy(t.data_ptr(), s.data(), s.size());
  return t;
}

void hash_header(Hasher& h, int64_t step, int64_t world, int64_t rank) {
  h.str("step");
  h.u64(static_cast<uint64_t>(step));
  h.str("world_size");
  h.u64(static_cast<uint64_t>(world));
  h.str("rank");
  h.u64(static_cast<uint64_t>(rank));
}

// Every attribute in the file but the checksum itself: whatever a loader
// reads from an attribute (model/config_json, zerorl_dtype, ...) is covered,
// and so is one added later.
void hash_attributes(Hasher& h, const H5File& f) {
  for (const H5File::Attr& a : f.attributes()) {
    if (a.object.empty() && a.name == "checksum_xxh3") continue;
    h.str(a.object);
    h.str(a.name);
    h.str(a.type);
    h.str(a.bytes);
  }
}

// ------------------------------------------------------------ names, json --

void check_tensor_name(const std::string& group, const std::string& name) {
  bool ok = !name.empty() && name.front() != '/' && name.back() != '/' &&
            name.find("//") == std::string::npos;
  ZR_CHECK(ok, "checkpoint: bad tensor name '", name, "' in group '", group,
           "' (empty, or a leading/trailing/double '/')");
}

std::string double_bits(double v) {
  uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  return hex64(u);
}

double bits_double(const std::string& hex, const std::string& what) {
  ZR_CHECK(hex.size() == 16 && hex.find_first_not_of("0123456789abcdef") == std::string::npos,
           "checkpoint manifest: double '", what, "' is not 16 hex digits: '", hex, "'");
  uint64_t u = std::strtoull(hex.c_str(), nullptr, 16);
  double v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

const NamedTensors& group_of(const Checkpoint& c, const std::string& g) {
  if (g == "model") return c.weights;
  if (g == "optimizer") return c.optimizer;
  return c.reference;
}
NamedTensors& group_of(Checkpoint& c, const std::string& g) {
  return const_cast<NamedTensors&>(group_of(static_cast<const Checkpoint&>(c), g));
}

int64_t format_of(const Checkpoint& c) { return c.shards.empty() ? kFormatNoShards : kFormat; }

std::string make_manifest(const Checkpoint& c) {
  nlohmann::json j;
  j["format"] = format_of(c);
  for (const char* g : kGroups) {
    nlohmann::json names = nlohmann::json::array();
    std::vector<std::string> seen;
    for (const auto& kv : group_of(c, g)) {
      check_tensor_name(g, kv.first);
      ZR_CHECK(kv.second.defined(), "checkpoint: tensor '", g, "/", kv.first, "' is undefined");
      names.push_back(kv.first);
      seen.push_back(kv.first);
    }
    std::sort(seen.begin(), seen.end());
    auto dup = std::adjacent_find(seen.begin(), seen.end());
    ZR_CHECK(dup == seen.end(), "checkpoint: tensor '", g, "/", *dup, "' appears twice");
    j["groups"][g] = names;
  }
  j["rng"] = c.rng;
  j["data_cursor"] = c.data_cursor;
  j["model_config_json"] = c.model_config_json;
  j["ints"] = c.ints;
  j["strings"] = c.strings;
  nlohmann::json d = nlohmann::json::object();
  for (const auto& kv : c.doubles) d[kv.first] = double_bits(kv.second);
  j["doubles"] = d;
  if (!c.shards.empty()) {
    nlohmann::json sh = nlohmann::json::object();
    for (const auto& [full, r] : c.shards) {
      const size_t slash = full.find('/');
      const std::string g = slash == std::string::npos ? "" : full.substr(0, slash);
      const NamedTensors& ts = g == "model" || g == "reference" ? group_of(c, g) : NamedTensors{};
      auto it = std::find_if(ts.begin(), ts.end(),
                             [&](const auto& kv) { return kv.first == full.substr(slash + 1); });
      ZR_CHECK(it != ts.end(), "checkpoint: row shard '", full,
               "' names no tensor of the model or reference group");
      const at::Tensor& t = it->second;
      ZR_CHECK(t.dim() >= 1 && t.size(0) == r.rows && r.rows > 0 && r.first >= 0 &&
                   r.first + r.rows <= r.total,
               "checkpoint: row shard '", full, "' of ", (t.dim() ? t.size(0) : 0),
               " rows recorded as rows [", r.first, ", ", r.first + r.rows, ") of ", r.total);
      sh[full] = {r.first, r.rows, r.total};
    }
    j["shards"] = sh;
  }
  return j.dump();
}

// The manifest's non-tensor content goes into `out`; returns names per group.
std::map<std::string, std::vector<std::string>> parse_manifest(const std::string& text,
                                                               Checkpoint& out) {
  std::map<std::string, std::vector<std::string>> names;
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    const int64_t format = j.at("format").get<int64_t>();
    ZR_CHECK(format >= kOldestFormat && format <= kFormat, "unsupported checkpoint format ",
             j.at("format").dump());
    for (const char* g : kGroups) names[g] = j.at("groups").at(g).get<std::vector<std::string>>();
    out.rng = j.at("rng").get<std::map<std::string, std::string>>();
    out.data_cursor = j.at("data_cursor").get<std::string>();
    out.model_config_json = j.at("model_config_json").get<std::string>();
    out.ints = j.at("ints").get<std::map<std::string, int64_t>>();
    out.strings = j.at("strings").get<std::map<std::string, std::string>>();
    for (auto& [k, v] : j.at("doubles").items())
      out.doubles[k] = bits_double(v.get<std::string>(), k);
    if (j.contains("shards"))
      for (auto& [k, v] : j.at("shards").items()) {
        const auto fr = v.get<std::vector<int64_t>>();
        ZR_CHECK(
            fr.size() == 3 && fr[0] >= 0 && fr[1] > 0 && fr[0] + fr[1] <= fr[2],
            "the manifest's row shard '", k,
            "' is not [first, rows, total] with 0 <= first < first + rows <= total: ", v.dump());
        out.shards[k] = {fr[0], fr[1], fr[2]};
      }
  } catch (const nlohmann::json::exception& e) {
    ZR_THROW("the manifest is unreadable (", e.what(), ")");
  }
  return names;
}

// ---------------------------------------------------------------- reading --

struct ReadOptions {
  bool keep_tensors = true;
  bool verify = true;
  CheckpointInfo* info = nullptr;  // filled when given
};

// Reads (and verifies) a file; on any problem throws Error(reason) without
// the path (callers add it).
Checkpoint read_file(const std::string& path, const ReadOptions& opt) {
  Checkpoint c;
  std::unique_ptr<H5File> f;
  try {
    f = std::make_unique<H5File>(path, H5File::Mode::kRead);
  } catch (const Error&) {
    if (!fs::exists(path)) ZR_THROW("the file does not exist");
    ZR_THROW("not a readable HDF5 file (truncated or corrupt), ", fs::file_size(path), " bytes");
  }
  ZR_CHECK(f->has_attr("", "zerorl_checkpoint_format"), "not a zerorl checkpoint (no format tag)");
  int64_t format = f->read_attr_int("", "zerorl_checkpoint_format");
  ZR_CHECK(format >= kOldestFormat && format <= kFormat, "unsupported checkpoint format ", format,
           " (this build reads ", kOldestFormat, " to ", kFormat, ")");
  c.step = f->read_attr_int("", "step");
  c.world_size = static_cast<int>(f->read_attr_int("", "world_size"));
  c.rank = static_cast<int>(f->read_attr_int("", "rank"));
  std::string stored = f->read_attr_string("", "checksum_xxh3");

  std::string manifest = f->read_bytes(kManifest);
  auto names = parse_manifest(manifest, c);
  c.recipe_yaml = f->read_bytes(kRecipe);

  std::vector<std::pair<std::string, std::string>> order;  // full name, group
  for (const auto& [g, list] : names)
    for (const auto& n : list) order.emplace_back(g + "/" + n, g);
  order.emplace_back(kManifest, "");
  order.emplace_back(kRecipe, "");
  std::sort(order.begin(), order.end());

  Hasher h;
  for (const auto& [full, g] : order) {
    at::Tensor t;
    if (full == kManifest)
      t = bytes_tensor(manifest);
    else if (full == kRecipe)
      t = bytes_tensor(c.recipe_yaml);
    else {
      ZR_CHECK(f->exists(full), "tensor '", full, "' listed in the manifest is missing");
      t = f->read_tensor(full);
    }
    h.tensor(full, t);
    if (auto sh = c.shards.find(full); sh != c.shards.end())
      ZR_CHECK(t.dim() >= 1 && t.size(0) == sh->second.rows, "row shard '", full, "' holds ",
               t.dim() ? t.size(0) : 0, " rows, its manifest says ", sh->second.rows);
    if (!g.empty()) {
      std::string name = full.substr(g.size() + 1);
      if (opt.info) {
        CheckpointInfo::TensorInfo ti;
        ti.name = name;
        ti.dtype = c10::toString(t.scalar_type());
        ti.shape.assign(t.sizes().begin(), t.sizes().end());
        ti.bytes = static_cast<int64_t>(t.nbytes());
        opt.info->groups[g].push_back(std::move(ti));
      }
      if (opt.keep_tensors) group_of(c, g).emplace_back(name, t);
    }
  }
  for (const auto& [full, r] : c.shards)
    ZR_CHECK(std::find_if(order.begin(), order.end(),
                          [&](const auto& o) { return o.first == full && !o.second.empty(); }) !=
                 order.end(),
             "the manifest's row shard '", full, "' names no tensor of the file");
  ZR_CHECK(c.shards.empty() || format >= 3, "format ", format, " file with row shards");
  hash_header(h, c.step, c.world_size, c.rank);
  if (format >= 2 && opt.verify) hash_attributes(h, *f);
  std::string computed = hex64(h.digest());
  if (opt.verify)
    ZR_CHECK(computed == stored, "checksum mismatch: stored ", stored, ", computed ", computed,
             " (the file is corrupt)");

  // Tensors in manifest order, as they were given to save_checkpoint.
  if (opt.keep_tensors) {
    for (const char* g : kGroups) {
      auto& vec = group_of(c, g);
      const auto& want = names[g];
      std::map<std::string, at::Tensor> by_name(vec.begin(), vec.end());
      vec.clear();
      for (const auto& n : want) vec.emplace_back(n, by_name.at(n));
    }
  }
  if (opt.info) {
    CheckpointInfo& i = *opt.info;
    i.step = c.step;
    i.world_size = c.world_size;
    i.rank = c.rank;
    i.recipe_yaml = c.recipe_yaml;
    i.stored_checksum = stored;
    i.rng = c.rng;
    i.data_cursor = c.data_cursor;
    i.ints = c.ints;
    i.doubles = c.doubles;
    i.strings = c.strings;
    i.shards = c.shards;
  }
  return c;
}

// ------------------------------------------------------------ file system --

void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  ZR_CHECK(fd >= 0, "cannot open '", path, "' to fsync it: ", std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  ZR_CHECK(rc == 0, "fsync of '", path, "' failed: ", std::strerror(err));
}

bool parse_step_dir(const std::string& name, int64_t* step) {
  const std::string prefix = "step_";
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() ||
      name.size() > prefix.size() + 18)
    return false;
  std::string digits = name.substr(prefix.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos) return false;
  *step = std::stoll(digits);
  return true;
}

void remove_quietly(const fs::path& p) {
  std::error_code ec;
  fs::remove(p, ec);  // an already-missing file is fine
}

}  // namespace

// ------------------------------------------------------------------ paths --

std::string checkpoint_step_dir(const std::string& root, int64_t step) {
  ZR_CHECK(step >= 0, "checkpoint step must be >= 0, got ", step);
  return (fs::path(root) / ("step_" + std::to_string(step))).string();
}

std::string checkpoint_rank_file(const std::string& step_dir, int rank) {
  ZR_CHECK(rank >= 0, "rank must be >= 0, got ", rank);
  return (fs::path(step_dir) / ("rank_" + std::to_string(rank) + ".h5")).string();
}

std::vector<int64_t> list_checkpoint_steps(const std::string& root) {
  std::vector<int64_t> steps;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return steps;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    int64_t s;
    if (e.is_directory(ec) && parse_step_dir(e.path().filename().string(), &s)) steps.push_back(s);
  }
  ZR_CHECK(!ec, "cannot list checkpoint directory '", root, "': ", ec.message());
  std::sort(steps.begin(), steps.end());
  return steps;
}

// ---------------------------------------------------------------- writing --

std::string write_checkpoint_temp(const Checkpoint& c, const std::string& root) {
  ZR_CHECK(c.world_size >= 1 && c.rank >= 0 && c.rank < c.world_size, "checkpoint: rank ", c.rank,
           " outside world size ", c.world_size);
  std::string dir = checkpoint_step_dir(root, c.step);
  std::error_code ec;
  fs::create_directories(dir, ec);
  ZR_CHECK(!ec, "cannot create checkpoint directory '", dir, "': ", ec.message());
  std::string final_path = checkpoint_rank_file(dir, c.rank);
  std::string tmp = final_path + ".tmp";
  std::string manifest = make_manifest(c);

  struct Item {
    std::string full;
    const at::Tensor* t;
  };
  std::vector<Item> items;
  for (const char* g : kGroups)
    for (const auto& kv : group_of(c, g))
      items.push_back({std::string(g) + "/" + kv.first, &kv.second});
  at::Tensor manifest_t = bytes_tensor(manifest), recipe_t = bytes_tensor(c.recipe_yaml);
  items.push_back({kManifest, &manifest_t});
  items.push_back({kRecipe, &recipe_t});
  std::sort(items.begin(), items.end(),
            [](const Item& a, const Item& b) { return a.full < b.full; });

  try {
    {
      H5File f(tmp, H5File::Mode::kCreate);
      Hasher h;
      for (const Item& it : items) {
        at::Tensor t = cpu_contiguous(*it.t);
        f.write_tensor(it.full, t);
        h.tensor(it.full, t);
      }
      hash_header(h, c.step, c.world_size, c.rank);
      f.write_attr("", "zerorl_checkpoint_format", format_of(c));
      f.write_attr("", "step", c.step);
      f.write_attr("", "world_size", static_cast<int64_t>(c.world_size));
      f.write_attr("", "rank", static_cast<int64_t>(c.rank));
      if (!c.model_config_json.empty() && !c.weights.empty()) {
        f.write_attr("model", "config_json", c.model_config_json);
        f.write_attr("model", "zerorl_format", static_cast<int64_t>(1));
      }
      if (!c.model_config_json.empty() && !c.reference.empty()) {
        f.write_attr("reference", "config_json", c.model_config_json);
        f.write_attr("reference", "zerorl_format", static_cast<int64_t>(1));
      }
      hash_attributes(h, f);  // last: every attribute is written
      f.write_attr("", "checksum_xxh3", hex64(h.digest()));
      f.flush();
      f.close();  // HDF5 has written everything it buffers, or says why not
    }
    fsync_path(tmp, false);
  } catch (...) {
    remove_quietly(tmp);
    throw;
  }
  return tmp;
}

std::string commit_checkpoint_temp(const std::string& temp_path) {
  const std::string suffix = ".tmp";
  ZR_CHECK(temp_path.size() > suffix.size() &&
               temp_path.compare(temp_path.size() - suffix.size(), suffix.size(), suffix) == 0,
           "commit_checkpoint_temp: '", temp_path, "' is not a temp checkpoint name");
  std::string final_path = temp_path.substr(0, temp_path.size() - suffix.size());
  ZR_CHECK(::rename(temp_path.c_str(), final_path.c_str()) == 0, "cannot rename '", temp_path,
           "' to '", final_path, "': ", std::strerror(errno));
  fs::path dir = fs::path(final_path).parent_path();
  fsync_path(dir.string(), true);                // the rename itself
  fsync_path(dir.parent_path().string(), true);  // a step directory created just now
  return final_path;
}

std::string save_checkpoint(const Checkpoint& c, const std::string& root) {
  return commit_checkpoint_temp(write_checkpoint_temp(c, root));
}

std::vector<int64_t> prune_checkpoints(const std::string& root, int rank, int64_t newest_step,
                                       int keep_last) {
  std::vector<int64_t> deleted;
  std::vector<int64_t> steps = list_checkpoint_steps(root);
  std::vector<int64_t> mine;  // steps <= newest holding this rank's file
  for (int64_t s : steps)
    if (s <= newest_step && fs::exists(checkpoint_rank_file(checkpoint_step_dir(root, s), rank)))
      mine.push_back(s);
  std::vector<int64_t> keep;
  if (keep_last <= 0)
    keep = mine;
  else
    keep.assign(mine.end() - std::min<size_t>(mine.size(), static_cast<size_t>(keep_last)),
                mine.end());

  for (int64_t s : steps) {
    std::string dir = checkpoint_step_dir(root, s);
    std::string file = checkpoint_rank_file(dir, rank);
    bool kept = std::binary_search(keep.begin(), keep.end(), s);
    if (s != newest_step) remove_quietly(file + ".tmp");  // left by a crash
    if (!kept && fs::exists(file)) {
      if (s > newest_step)
        ZR_LOG_WARN("removing checkpoint '", file, "': step ", s, " is newer than step ",
                    newest_step, ", from an abandoned run of this name");
      remove_quietly(file);
      deleted.push_back(s);
    }
    std::error_code ec;
    if (fs::is_empty(dir, ec) && !ec) fs::remove(dir, ec);  // other ranks' files keep it
  }
  return deleted;
}

// ---------------------------------------------------------------- reading --

Checkpoint load_checkpoint(const std::string& path) {
  try {
    return read_file(path, ReadOptions{});
  } catch (const Error& e) {
    ZR_THROW("checkpoint '", path, "': ", e.what());
  }
}

std::string verify_checkpoint(const std::string& path) {
  try {
    ReadOptions o;
    o.keep_tensors = false;
    read_file(path, o);
    return "";
  } catch (const std::exception& e) {
    std::string why = e.what();
    return why.empty() ? "unknown error" : why;
  }
}

CheckpointInfo inspect_checkpoint(const std::string& path) {
  CheckpointInfo info;
  try {
    ReadOptions o;
    o.keep_tensors = false;
    o.verify = false;
    o.info = &info;
    read_file(path, o);
  } catch (const Error& e) {
    ZR_THROW("checkpoint '", path, "': ", e.what());
  }
  return info;
}

std::string weights_hash(const Checkpoint& c) {
  std::vector<const std::pair<std::string, at::Tensor>*> sorted;
  for (const auto& kv : c.weights) sorted.push_back(&kv);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
  Hasher h;
  for (auto* kv : sorted) h.tensor(kv->first, cpu_contiguous(kv->second));
  return hex64(h.digest());
}

std::vector<std::string> list_rank_files(const std::string& step_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(step_dir, ec)) {
    std::string n = e.path().filename().string();
    if (n.size() < 9 || n.rfind("rank_", 0) != 0 || n.compare(n.size() - 3, 3, ".h5") != 0)
      continue;
    std::string digits = n.substr(5, n.size() - 8);
    if (digits.empty() || digits.size() > 9 ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      continue;
    found.emplace_back(std::stoll(digits), e.path().string());
  }
  ZR_CHECK(!ec, "cannot list '", step_dir, "': ", ec.message());
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

namespace {

// The file's weights hash: of its model/ tensors, or, for a rank that wrote
// none (they are rank 0's to write) or only some (row shards), the hash it
// recorded of the weights it held ("weights_hash").
std::string file_weights_hash(const std::string& path) {
  Checkpoint c = load_checkpoint(path);
  if ((c.weights.empty() || !c.shards.empty()) && c.strings.count("weights_hash"))
    return c.strings.at("weights_hash");
  return weights_hash(c);
}

// A file's manifest alone: no tensor is read and nothing verified (callers
// read from steps verified before, or verify each file first).
struct Manifest {
  Checkpoint meta;                                        // no tensors
  std::map<std::string, std::vector<std::string>> names;  // per group
};
Manifest read_manifest(const std::string& path) {
  try {
    H5File f(path, H5File::Mode::kRead);
    Manifest m;
    m.names = parse_manifest(f.read_bytes(kManifest), m.meta);
    return m;
  } catch (const Error& e) {
    ZR_THROW("checkpoint '", path, "': ", e.what());
  }
}

// "" when, over the rank files, the row shards of every tensor tile its rows
// exactly once (the same total everywhere, no gap, no overlap) and no file
// holds a sharded tensor whole; otherwise why.
std::string check_row_shards(const std::vector<std::string>& files) {
  struct Piece {
    int64_t first, rows;
    std::string file;
  };
  std::map<std::string, std::vector<Piece>> pieces;
  std::map<std::string, int64_t> totals;
  std::map<std::string, std::string> whole;  // "group/name" -> the first file holding it whole
  for (const std::string& file : files) {
    const Manifest m = read_manifest(file);
    const std::string name = fs::path(file).filename().string();
    for (const auto& [g, list] : m.names)
      for (const std::string& n : list) {
        const std::string full = g + "/" + n;
        auto sh = m.meta.shards.find(full);
        if (sh == m.meta.shards.end()) {
          whole.emplace(full, name);
          continue;
        }
        auto [t, fresh] = totals.emplace(full, sh->second.total);
        if (!fresh && t->second != sh->second.total)
          return name + " holds rows of " + full + " as a whole of " +
                 std::to_string(sh->second.total) + " rows, another rank file of " +
                 std::to_string(t->second);
        pieces[full].push_back({sh->second.first, sh->second.rows, name});
      }
  }
  for (auto& [full, ps] : pieces) {
    if (whole.count(full)) return whole[full] + " holds " + full + " whole, other files rows of it";
    std::sort(ps.begin(), ps.end(),
              [](const Piece& a, const Piece& b) { return a.first < b.first; });
    int64_t next = 0;
    for (size_t i = 0; i < ps.size(); ++i) {
      if (ps[i].first > next)
        return full + ": rows [" + std::to_string(next) + ", " + std::to_string(ps[i].first) +
               ") are in no rank file";
      if (ps[i].first < next)
        return full + ": rows [" + std::to_string(ps[i].first) + ", " +
               std::to_string(std::min(next, ps[i].first + ps[i].rows)) + ") are in both " +
               ps[i - 1].file + " and " + ps[i].file;
      next = ps[i].first + ps[i].rows;
    }
    if (next != totals[full])
      return full + ": rows [" + std::to_string(next) + ", " + std::to_string(totals[full]) +
             ") are in no rank file";
  }
  return "";
}

}  // namespace

bool checkpoint_has_row_shards(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const std::string& f : list_rank_files(path))
      if (checkpoint_has_row_shards(f)) return true;
    return false;
  }
  {
    H5File f(path, H5File::Mode::kRead);
    if (!f.has_attr("", "zerorl_checkpoint_format") || !f.exists(kManifest)) return false;
  }
  return !read_manifest(path).meta.shards.empty();
}

NamedTensors load_checkpoint_group(const std::string& step_dir, const std::string& group,
                                   const RowPick& pick) {
  ZR_CHECK(group == "model" || group == "reference", "load_checkpoint_group: group '", group,
           "' holds no weights");
  const std::vector<std::string> files = list_rank_files(step_dir);
  ZR_CHECK(!files.empty(), "'", step_dir, "' holds no rank_<r>.h5 checkpoint files");
  const std::string why = check_row_shards(files);
  ZR_CHECK(why.empty(), "checkpoint '", step_dir, "': ", why);
  // Each tensor is whole in some file(s) or row-sharded over files (checked).
  struct Want {
    std::string name;
    std::optional<std::pair<int64_t, int64_t>> rows;  // {first, count}; unset: the whole
    at::Tensor out;
    int64_t need = -1, filled = 0;  // rows; -1 until known.  A whole taken whole counts 1.
    bool complete() const { return need >= 0 && filled == need; }
  };
  std::vector<Want> wants;
  std::map<std::string, size_t> index;
  std::vector<Manifest> manifests;
  for (const std::string& f : files) {
    manifests.push_back(read_manifest(f));
    for (const std::string& n : manifests.back().names[group])
      if (index.emplace(n, wants.size()).second) {
        Want w;
        w.name = n;
        if (pick) w.rows = pick(n);
        if (w.rows) w.need = w.rows->second;
        wants.push_back(std::move(w));
      }
  }
  // The rows of `w` wanted from a tensor that holds [first, first + rows) of total.
  auto wanted = [](const Want& w, int64_t total) -> std::pair<int64_t, int64_t> {
    return w.rows ? std::make_pair(w.rows->first, w.rows->first + w.rows->second)
                  : std::make_pair(int64_t{0}, total);
  };
  for (size_t k = 0; k < files.size(); ++k) {
    const Manifest& m = manifests[k];
    bool needed = false;
    for (const std::string& n : m.names.at(group)) {
      const Want& w = wants[index.at(n)];
      auto sh = m.meta.shards.find(group + "/" + n);
      if (sh == m.meta.shards.end()) {
        needed |= !w.complete();
      } else {
        const auto [lo, hi] = wanted(w, sh->second.total);
        needed |= std::max(lo, sh->second.first) < std::min(hi, sh->second.first + sh->second.rows);
      }
    }
    if (!needed) continue;  // only the files holding something wanted are read
    const Checkpoint c = load_checkpoint(files[k]);
    for (const auto& [n, t] : group_of(c, group)) {
      Want& w = wants[index.at(n)];
      auto sh = c.shards.find(group + "/" + n);
      if (sh == c.shards.end() && !w.rows) {  // whole, wanted whole
        if (!w.complete()) w.out = t, w.need = w.filled = 1;
        continue;
      }
      if (w.complete()) continue;
      const int64_t first = sh == c.shards.end() ? 0 : sh->second.first;
      const int64_t total = sh == c.shards.end() ? (t.dim() ? t.size(0) : 0) : sh->second.total;
      const auto [lo, hi] = wanted(w, total);
      ZR_CHECK(t.dim() >= 1 && lo >= 0 && lo < hi && hi <= total, "checkpoint '", step_dir,
               "': ", group, "/", n, " has ", total, " rows; rows [", lo, ", ", hi, ") wanted");
      if (!w.out.defined()) {
        std::vector<int64_t> shape = t.sizes().vec();
        shape[0] = hi - lo;
        w.out = at::empty(shape, t.options());
        w.need = hi - lo;
      }
      ZR_CHECK(
          w.out.sizes().slice(1) == t.sizes().slice(1) && w.out.scalar_type() == t.scalar_type(),
          "checkpoint '", step_dir, "': the row shards of ", group, "/", n,
          " disagree on shape or dtype (", files[k], ")");
      const int64_t a = std::max(lo, first), b = std::min(hi, first + t.size(0));
      if (a >= b) continue;
      w.out.narrow(0, a - lo, b - a).copy_(t.narrow(0, a - first, b - a));
      w.filled += b - a;
    }
  }
  NamedTensors out;
  for (Want& w : wants) {
    ZR_CHECK(w.complete(), "checkpoint '", step_dir, "': ", group, "/", w.name,
             ": the rank files hold ", w.filled, " of the ", w.need, " rows wanted");
    out.emplace_back(w.name, w.out);
  }
  return out;
}

std::string checkpoint_weights_hash(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return file_weights_hash(path);
  std::vector<std::string> files = list_rank_files(path);
  ZR_CHECK(!files.empty(), "'", path, "' holds no rank_<r>.h5 checkpoint files");
  if (checkpoint_has_row_shards(path)) {
    Checkpoint whole;
    whole.weights = load_checkpoint_group(path, "model");
    return weights_hash(whole);
  }
  std::vector<std::string> hashes;
  for (const auto& f : files) hashes.push_back(file_weights_hash(f));
  if (std::all_of(hashes.begin(), hashes.end(),
                  [&](const std::string& h) { return h == hashes[0]; }))
    return hashes[0];
  Hasher h;
  for (const auto& x : hashes) h.str(x);
  return hex64(h.digest());
}

// ----------------------------------------------------------------- resume --

std::string verify_checkpoint_step(const std::string& step_dir) {
  try {
    const std::string f0 = checkpoint_rank_file(step_dir, 0);
    if (!fs::exists(f0)) return "'" + f0 + "' is missing";
    // Every file verifies on its own first, so what the header of one says
    // is what was written.
    std::string why = verify_checkpoint(f0);
    if (!why.empty()) return f0 + ": " + why;
    int64_t world = 0, step = 0;
    {
      H5File f(f0, H5File::Mode::kRead);
      world = f.read_attr_int("", "world_size");
      step = f.read_attr_int("", "step");
    }
    int64_t dir_step = -1;
    if (parse_step_dir(fs::path(step_dir).filename().string(), &dir_step) && dir_step != step)
      return "rank_0.h5 holds step " + std::to_string(step) + ", not the step " +
             std::to_string(dir_step) + " its directory names";
    for (int r = 1; r < world; ++r) {
      const std::string file = checkpoint_rank_file(step_dir, r);
      const std::string& name = file;
      if (!fs::exists(file))
        return name + " of the " + std::to_string(world) + " ranks that wrote it is missing";
      why = verify_checkpoint(file);
      if (!why.empty()) return name + ": " + why;
      H5File f(file, H5File::Mode::kRead);
      const int64_t w = f.read_attr_int("", "world_size"), s = f.read_attr_int("", "step"),
                    rk = f.read_attr_int("", "rank");
      if (w != world || s != step || rk != r)
        return name + " (step " + std::to_string(s) + ", rank " + std::to_string(rk) + " of " +
               std::to_string(w) + ") disagrees with rank_0.h5 (step " + std::to_string(step) +
               " of " + std::to_string(world) + " ranks)";
    }
    for (const std::string& file : list_rank_files(step_dir)) {
      const std::string name = fs::path(file).filename().string();
      if (std::stoll(name.substr(5)) >= world)
        return name + " is present but rank_0.h5 says " + std::to_string(world) +
               " ranks wrote this step";
    }
    return check_row_shards(list_rank_files(step_dir));
  } catch (const std::exception& e) {
    return e.what();
  }
}

std::string verify_if_checkpoint(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec) || !fs::exists(path, ec)) return "";
  {
    std::unique_ptr<H5File> f;
    try {
      f = std::make_unique<H5File>(path, H5File::Mode::kRead);
    } catch (const Error&) {
      return "";  // not HDF5: the caller's loader says what it is
    }
    if (!f->has_attr("", "zerorl_checkpoint_format")) return "";
  }
  return verify_checkpoint(path);
}

ResumePoint find_resume_checkpoint(const std::string& root, int rank, int world_size,
                                   const std::function<int64_t(int64_t)>& min_over_ranks) {
  ZR_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "find_resume_checkpoint: rank ", rank,
           " outside world size ", world_size);
  auto min_all = [&](int64_t v) { return min_over_ranks ? min_over_ranks(v) : v; };
  std::vector<int64_t> steps = list_checkpoint_steps(root);
  std::map<int64_t, std::string> verdict;  // lazily verified, newest first: "" or why not
  auto newest_valid_at_most = [&](int64_t limit) -> int64_t {
    for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
      int64_t s = *it;
      if (s > limit) continue;
      auto v = verdict.find(s);
      if (v == verdict.end()) {
        const std::string dir = checkpoint_step_dir(root, s);
        std::string why = verify_checkpoint_step(dir);
        if (!why.empty())
          ZR_LOG_WARN("skipping checkpoint '", dir, "': ", why, "; falling back to an older step");
        v = verdict.emplace(s, why).first;
      }
      if (v->second.empty()) return s;
    }
    return -1;
  };
  int64_t limit = std::numeric_limits<int64_t>::max();
  int64_t agreed = -1;
  while (true) {
    int64_t local = newest_valid_at_most(limit);
    int64_t lo = min_all(local), hi = -min_all(-local);
    if (lo == hi) {
      agreed = lo;
      break;
    }
    if (local > lo)
      ZR_LOG_WARN("checkpoint step ", local, " verifies on this rank but not on every rank; ",
                  "trying step ", lo, " or older");
    limit = lo;  // some rank has nothing newer than lo
  }
  ResumePoint rp;
  rp.step = agreed;
  if (agreed >= 0) rp.path = checkpoint_step_dir(root, agreed);
  for (const auto& [s, why] : verdict)
    if (s > agreed && !why.empty()) rp.skipped.emplace_back(s, why);
  if (agreed >= 0) return rp;
  // Nothing usable.  Starting afresh would overwrite what may be the only
  // evidence of what went wrong (and the run's outputs): every rank refuses
  // when any rank saw a step it could not verify.
  const int64_t bad_anywhere = -min_all(-static_cast<int64_t>(rp.skipped.size()));
  if (bad_anywhere == 0) return rp;  // no checkpoint at all: a fresh start
  std::string list;
  for (auto it = rp.skipped.rbegin(); it != rp.skipped.rend(); ++it)
    list += "\n  " + checkpoint_step_dir(root, it->first) + ": " + it->second;
  if (list.empty()) list = "\n  (another rank could not verify its view of them; see its log)";
  ZR_THROW("--resume auto: none of the checkpoints under '", root,
           "' verifies, so nothing was resumed and nothing was removed:", list,
           "\nCheck them with `zerorl ckpt verify STEP_DIR`; to start this run again from step 0 "
           "use --overwrite (it deletes them), or set another run.name");
}

ResumePoint find_resume_checkpoint(const std::string& root, Comm& comm) {
  return find_resume_checkpoint(root, comm.rank(), comm.size(), [&comm](int64_t v) {
    return static_cast<int64_t>(comm.allreduce_scalar(static_cast<double>(v), ReduceOp::kMin));
  });
}

std::string quarantine_checkpoint(const std::string& root, int64_t step, const std::string& why) {
  const std::string dir = checkpoint_step_dir(root, step);
  std::string dest = dir + ".corrupt";
  for (int n = 2; fs::exists(dest); ++n) dest = dir + ".corrupt." + std::to_string(n);
  ZR_CHECK(::rename(dir.c_str(), dest.c_str()) == 0, "cannot move the unverifiable checkpoint '",
           dir, "' aside to '", dest, "': ", std::strerror(errno));
  fsync_path(root, true);
  std::ofstream note(dest + "/why.txt", std::ios::binary);
  note << "zerorl moved this checkpoint aside when --resume auto could not verify it:\n"
       << why << "\n";
  return dest;
}

ResumePoint resolve_resume_path(const std::string& path, int rank, int world_size) {
  ZR_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "resolve_resume_path: rank ", rank,
           " outside world size ", world_size);
  std::error_code ec;
  ZR_CHECK(fs::exists(path, ec), "--resume ", path, ": no such checkpoint");
  const std::string dir = fs::is_directory(path, ec) ? path : fs::path(path).parent_path().string();
  std::string why = verify_checkpoint_step(dir);
  ZR_CHECK(why.empty(), "--resume ", path, ": checkpoint '", dir, "' is unusable: ", why);
  ResumePoint rp;
  rp.path = dir;
  H5File f(checkpoint_rank_file(dir, 0), H5File::Mode::kRead);
  rp.step = f.read_attr_int("", "step");
  return rp;
}

}  // namespace zerorl
