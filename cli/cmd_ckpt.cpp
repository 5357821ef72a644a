// zerorl ckpt inspect|verify|hash PATH: look into training checkpoints.
#include <yaml-cpp/yaml.h>

#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "trainer/checkpoint.h"

namespace fs = std::filesystem;

namespace zerorl::cli {

static const char* kUsage =
    "usage: zerorl ckpt inspect|verify|hash PATH [--all] [--recipe]\n"
    "\n"
    "PATH is a checkpoint file (runs/NAME/checkpoints/step_N/rank_R.h5) or a step\n"
    "directory (runs/NAME/checkpoints/step_N: every rank file in it).\n"
    "\n"
    "  inspect   step, world size, recipe summary, tensor counts and bytes per\n"
    "            group (model, optimizer, reference), RNG streams, data cursor,\n"
    "            metadata, and a listing of each group's tensors\n"
    "  verify    recompute each file's checksum; prints 'ok' or the reason per\n"
    "            file; for a step directory also checks that every rank's file\n"
    "            is there and that they agree on step and world size (what\n"
    "            --resume needs); exit status 0 when all verify, 1 otherwise\n"
    "  hash      print the weights' hash (16 hex digits): equal for two runs that\n"
    "            reached bit-identical weights (optimizer state not included)\n"
    "\n"
    "  --all     inspect: list every tensor (default: the first 12 per group)\n"
    "  --recipe  inspect: print the whole resolved recipe\n";

namespace {

std::vector<std::string> files_of(const std::string& path) {
  std::error_code ec;
  ZR_CHECK(fs::exists(path, ec), "'", path, "' does not exist");
  if (!fs::is_directory(path, ec)) return {path};
  std::vector<std::string> files = list_rank_files(path);
  ZR_CHECK(!files.empty(), "'", path,
           "' holds no rank_<r>.h5 files (give a step directory or a checkpoint file)");
  return files;
}

std::string human_bytes(int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

// Scalars of the recipe as "a.b: v", depth first.
void flatten_yaml(const YAML::Node& n, const std::string& prefix, std::vector<std::string>& out) {
  if (n.IsMap()) {
    for (const auto& kv : n)
      flatten_yaml(kv.second, prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar(),
                   out);
  } else if (n.IsScalar()) {
    out.push_back(prefix + ": " + n.Scalar());
  } else if (n.IsSequence()) {
    out.push_back(prefix + ": [" + std::to_string(n.size()) + " items]");
  }
}

void print_recipe_summary(const std::string& yaml, bool full) {
  if (full) {
    std::cout << "recipe:\n" << yaml << (yaml.empty() || yaml.back() == '\n' ? "" : "\n");
    return;
  }
  std::vector<std::string> lines;
  try {
    flatten_yaml(YAML::Load(yaml), "", lines);
  } catch (const YAML::Exception& e) {
    std::cout << "recipe:       (does not parse: " << e.what() << ")\n";
    return;
  }
  const size_t kShow = 24;
  std::cout << "recipe:       " << lines.size() << " settings"
            << (lines.size() > kShow ? " (first 24; --recipe for all)" : "") << "\n";
  for (size_t i = 0; i < lines.size() && i < kShow; ++i) std::cout << "  " << lines[i] << "\n";
}

void inspect_one(const std::string& file, bool all, bool full_recipe) {
  CheckpointInfo info = inspect_checkpoint(file);
  int64_t count = 0, bytes = 0;
  for (const auto& [g, ts] : info.groups)
    for (const auto& t : ts) ++count, bytes += t.bytes;
  std::cout << "checkpoint:   " << file << "\n"
            << "step:         " << info.step << "\n"
            << "world size:   " << info.world_size << " (this file: rank " << info.rank << ")\n"
            << "checksum:     " << info.stored_checksum
            << " (stored; `zerorl ckpt verify` checks it)\n"
            << "tensors:      " << count << ", " << human_bytes(bytes) << "\n";
  for (const char* g : {"model", "optimizer", "reference"}) {
    auto it = info.groups.find(g);
    int64_t n = 0, b = 0;
    if (it != info.groups.end())
      for (const auto& t : it->second) ++n, b += t.bytes;
    std::printf("  %-11s %6" PRId64 " tensors  %s%s\n", g, n, human_bytes(b).c_str(),
                n == 0 && std::string(g) == "reference" ? "  (reference = policy)" : "");
  }
  std::cout << "rng streams:  ";
  for (const auto& [k, v] : info.rng) std::cout << k << " ";
  std::cout << "\n"
            << "data cursor:  " << (info.data_cursor.empty() ? "(none)" : info.data_cursor) << "\n";
  for (const auto& [k, v] : info.ints) std::cout << "meta " << k << " = " << v << "\n";
  for (const auto& [k, v] : info.doubles) std::printf("meta %s = %.17g\n", k.c_str(), v);
  for (const auto& [k, v] : info.strings) std::cout << "meta " << k << " = " << v << "\n";
  for (const auto& [k, r] : info.shards)  // expert parallelism: this file's rows of a stack
    std::cout << "row shard " << k << " = rows [" << r.first << ", " << r.first + r.rows << ") of "
              << r.total << "\n";
  print_recipe_summary(info.recipe_yaml, full_recipe);
  for (const auto& [g, ts] : info.groups) {
    if (ts.empty()) continue;
    std::cout << g << ":\n";
    size_t shown = 0;
    for (const auto& t : ts) {
      if (!all && shown == 12) {
        std::cout << "  ... " << ts.size() - shown << " more (--all to list)\n";
        break;
      }
      std::printf("  %-56s %-9s %-18s %s\n", t.name.c_str(), t.dtype.c_str(),
                  shape_str(t.shape).c_str(), human_bytes(t.bytes).c_str());
      ++shown;
    }
  }
}

}  // namespace

static int run_ckpt(Args& args) {
  bool all = args.flag("--all");
  bool full_recipe = args.flag("--recipe");
  std::vector<std::string> pos = args.positionals();
  args.finish();
  if (pos.size() != 2) throw UsageError("expected an action and a PATH");
  const std::string& action = pos[0];
  const std::string& path = pos[1];
  if (action != "inspect" && (all || full_recipe))
    throw UsageError("--all and --recipe apply to inspect only");

  if (action == "inspect") {
    std::vector<std::string> files = files_of(path);
    for (size_t i = 0; i < files.size(); ++i) {
      if (i) std::cout << "\n";
      inspect_one(files[i], all, full_recipe);
    }
    return 0;
  }
  if (action == "verify") {
    bool ok = true;
    std::error_code ec;
    const bool step_dir = fs::is_directory(path, ec);
    std::vector<std::string> files = step_dir ? list_rank_files(path) : files_of(path);
    for (const std::string& f : files) {
      std::string why = verify_checkpoint(f);
      if (why.empty())
        std::cout << "ok       " << f << "\n";
      else
        std::cout << "CORRUPT  " << f << ": " << why << "\n";
      ok = ok && why.empty();
    }
    if (step_dir) {
      // The step as a whole: a missing rank file or ranks that disagree
      // make it unusable even when each file present verifies.
      std::string why = verify_checkpoint_step(path);
      if (why.empty())
        std::cout << "ok       " << path << " (complete step)\n";
      else
        std::cout << "UNUSABLE " << path << ": " << why << "\n";
      ok = ok && why.empty();
    }
    return ok ? 0 : 1;
  }
  if (action == "hash") {
    std::cout << checkpoint_weights_hash(path) << "\n";
    return 0;
  }
  throw UsageError("unknown action '" + action + "' (inspect, verify or hash)");
}

ZR_REGISTER_COMMAND(ckpt, "inspect, verify or hash a training checkpoint", kUsage, run_ckpt);

}  // namespace zerorl::cli
