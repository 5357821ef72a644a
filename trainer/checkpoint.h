// Training checkpoints: one HDF5 file per rank per step, written atomically,
// checksummed, pruned to the last K, and found again for `--resume auto`.
//
// Layout on disk (<root> is runs/<name>/checkpoints):
//   <root>/step_<N>/rank_<r>.h5        N unpadded ("step_12"), r the rank
// Inside each file (core/h5.h conventions):
//   model/<name>        the policy's weights (group attrs "config_json" and
//                       "zerorl_format" = 1 when model_config_json is set, so
//                       model::load_weights / read_config read it as a model)
//   optimizer/<name>    optimizer state (names may contain '/')
//   reference/<name>    reference model, only when it differs from the policy
//   meta/manifest       JSON bytes: tensor names per group, RNG states, data
//                       cursor, free-form metadata (doubles as exact bit patterns)
//   meta/recipe_yaml    the resolved recipe, bytes
//   root attributes     zerorl_checkpoint_format, step, world_size, rank,
//                       checksum_xxh3 (16 hex digits)
// Row shards (format 3, expert parallelism): a file may hold only rows
// [first, first + n) along dim 0 of a tensor whose whole has `total` rows
// (each owner of an expert shard writes its experts of every expert stack).
// The manifest lists them ("shards": {"model/<name>": [first, rows, total]}); every
// other tensor in a file is whole.  A file with no row shards is written as
// format 2, byte for byte what it was before shards existed; a build that
// reads only formats 1 and 2 refuses a file with shards rather than
// mistaking a shard for the whole.
// The checksum is XXH3-64 over every dataset (sorted by full name: name,
// dtype, shape, raw bytes, each length-prefixed), the step, world_size and
// rank attributes, then (format 2) every attribute of every object but the
// checksum itself (object, name, stored type, raw bytes): an edited
// model/config_json or zerorl_dtype fails verification.  Format 1 files
// (no attributes in the checksum) still load.  Tensors round-trip bit-exactly (bf16, f16
// and bool included).
//
// Write discipline (save_checkpoint = write_checkpoint_temp + commit):
//   the file is written as "rank_<r>.h5.tmp", flushed, closed and fsync'd,
//   then renamed onto "rank_<r>.h5" and the directory fsync'd.  A crash
//   leaves at most a *.tmp file, which nothing ever reads; the final name
//   only ever holds a complete file.  A failed write removes its temp file.
//
// Resume: a checkpoint is a step directory; it is usable when the files of
// every rank that wrote it (rank_0 .. rank_<world_size-1>) are present,
// verify, agree on step and world size with each other and the directory's
// name, no other rank file is there, and the row shards of each tensor tile
// its rows exactly once over the files, with no file holding it whole too
// (verify_checkpoint_step; also what `zerorl ckpt verify STEP_DIR` reports).
// find_resume_checkpoint() takes the newest usable step, skipping bad ones
// with ZR_LOG_WARN naming the file and why.  The world size that resumes may
// differ from the one that wrote it: the trainer reads the replicated state
// (weights, reference, data cursor, counters) from rank 0's file and the
// optimizer slices of every rank file (optimizer.h), and reshards.  Under
// expert parallelism the weights are put together from the row shards
// (load_checkpoint_group), so any EP size (or none) resumes any other.
//
// Sharded writing (the trainer's convention): rank 0 writes the weights and
// the reference (under expert parallelism: the replicated ones, and its own
// experts as row shards; every other owner of an expert shard -- DP rank 0
// of its replicas -- writes its experts as row shards, nothing is gathered);
// every rank writes its optimizer slice, the metadata, and
// strings["weights_hash"], the weights_hash of the weights it held.
//
// Threads: none of this is thread-safe (HDF5 and the file system state);
// call from the training thread.  Errors throw zerorl::Error naming the file.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace zerorl {

class Comm;
class ConfigNode;

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// The recipe's `checkpoint` section.
struct CheckpointConfig {
  long every = 0;      // write a checkpoint every N steps (0: never; a stop still writes one)
  long keep_last = 3;  // keep the newest N steps (prune_checkpoints; <= 0 keeps all)

  static CheckpointConfig from(const ConfigNode& n);
};

struct Checkpoint {
  int64_t step = 0;  // the number of completed training steps
  int world_size = 1;
  int rank = 0;
  std::string recipe_yaml;        // Recipe::dump() of the run
  std::string model_config_json;  // the policy's HF config.json (may be empty)

  NamedTensors weights;    // -> model/
  NamedTensors optimizer;  // -> optimizer/ (Optimizer::state())
  NamedTensors reference;  // -> reference/; empty when it equals the policy

  std::map<std::string, std::string> rng;  // stream name -> Rng::state_string()
  std::string data_cursor;                 // the PromptSource position, opaque

  // Free-form metadata (the trainer writes "ref_reset_step", "wall_seconds", ...).
  std::map<std::string, int64_t> ints;
  std::map<std::string, double> doubles;  // stored as bit patterns: exact, NaN too
  std::map<std::string, std::string> strings;

  // Row shards (see the top), by "group/name" ("model/...", "reference/..."):
  // the tensor holds rows [first, first + rows) of `total`; rows is its dim 0.
  struct RowShard {
    int64_t first = 0, rows = 0, total = 0;
  };
  std::map<std::string, RowShard> shards;
};

// ---- paths ----
std::string checkpoint_step_dir(const std::string& root, int64_t step);
std::string checkpoint_rank_file(const std::string& step_dir, int rank);
// Step numbers of the step_<N> directories under root, ascending (a missing
// root gives none).  Other entries are ignored.
std::vector<int64_t> list_checkpoint_steps(const std::string& root);

// ---- writing ----
// Writes <root>/step_<step>/rank_<rank>.h5 atomically (see above) and returns
// its path.  Tensors may live on any device (copied to the CPU one at a time).
std::string save_checkpoint(const Checkpoint& ckpt, const std::string& root);
// The two halves of save_checkpoint, exposed so a crash between them can be
// tested: write the complete, fsync'd temp file (returns its path) ...
std::string write_checkpoint_temp(const Checkpoint& ckpt, const std::string& root);
// ... and rename it onto its final name, fsync'ing the directories.
std::string commit_checkpoint_temp(const std::string& temp_path);

// Keeps this rank's files of the newest `keep_last` steps <= newest_step and
// deletes the rest of this rank's files (older steps, stale *.tmp files, and
// steps > newest_step, which belong to an abandoned timeline: logged).  A
// step directory left empty is removed.  Call after save_checkpoint returned,
// so the new checkpoint is complete before anything is deleted.
// keep_last <= 0 keeps everything.  Returns the steps deleted.
std::vector<int64_t> prune_checkpoints(const std::string& root, int rank, int64_t newest_step,
                                       int keep_last);

// ---- reading ----
// Reads and verifies a checkpoint file; tensors come back on the CPU.
// Throws zerorl::Error naming the file and the reason (truncated, not HDF5,
// checksum mismatch, missing tensor, ...).
Checkpoint load_checkpoint(const std::string& path);
// Verifies a file without keeping its tensors.  Returns "" when it is good,
// otherwise the reason.  Never throws.
std::string verify_checkpoint(const std::string& path);
// Hash of the weights alone (model/ tensors: names, dtypes, shapes, bytes),
// as 16 hex digits: equal for two runs that reached the same weights.
std::string weights_hash(const Checkpoint& ckpt);
// The same for a checkpoint file or a step directory (every rank file is
// loaded and verified; throws if one is bad).  A rank file without weights
// gives the hash it recorded of the weights that rank held
// (strings["weights_hash"]), and so does a file holding row shards.  When all
// ranks hold the same weights (data parallel) the result equals any one
// rank's hash, so runs on different world sizes compare; a step directory
// with row shards hashes its weights put together (load_checkpoint_group),
// so an expert-parallel run compares with any other; otherwise it hashes the
// per-rank hashes in rank order.
std::string checkpoint_weights_hash(const std::string& path);
// The rank_<r>.h5 files of a step directory, by rank (temp files excluded).
std::vector<std::string> list_rank_files(const std::string& step_dir);

// One group ("model" or "reference") of a step directory as one whole
// checkpoint would hold it: each whole tensor from the lowest rank file that
// has it, each row-sharded tensor put together from the files holding its
// rows.  With `pick`, a tensor for which pick(name) gives {first, count} is
// cut to those rows (whole or sharded in the files: a rank's experts under
// another EP size); only the files holding something wanted are read, each
// verified.  Names in the order of the rank files' manifests (rank 0 first).
// Throws naming the step and tensor when rows are missing or a shape
// disagrees.  CPU tensors.
using RowPick = std::function<std::optional<std::pair<int64_t, int64_t>>(const std::string& name)>;
NamedTensors load_checkpoint_group(const std::string& step_dir, const std::string& group,
                                   const RowPick& pick = {});
// True when `path` (a step directory: some rank file of it; or one file)
// holds a row shard, as an expert-parallel checkpoint does: no single file
// holds the whole model.  False for a file that is no training checkpoint.
bool checkpoint_has_row_shards(const std::string& path);

// Summary of a file without reading tensor data (for `zerorl ckpt inspect`).
struct CheckpointInfo {
  int64_t step = 0;
  int world_size = 0;
  int rank = 0;
  std::string recipe_yaml;
  std::string stored_checksum;
  struct TensorInfo {
    std::string name;  // within its group
    std::string dtype;
    std::vector<int64_t> shape;
    int64_t bytes = 0;
  };
  std::map<std::string, std::vector<TensorInfo>> groups;  // "model", "optimizer", "reference"
  std::map<std::string, std::string> rng;
  std::string data_cursor;
  std::map<std::string, int64_t> ints;
  std::map<std::string, double> doubles;
  std::map<std::string, std::string> strings;
  std::map<std::string, Checkpoint::RowShard> shards;
};
CheckpointInfo inspect_checkpoint(const std::string& path);

// ---- resume ----
struct ResumePoint {
  int64_t step = -1;  // -1: nothing to resume from
  std::string path;   // the step directory
  // Steps newer than `step` that failed verification here, with the reason,
  // ascending (find_resume_checkpoint only).  The trainer keeps them aside
  // as evidence (quarantine_checkpoint) rather than letting a later save or
  // prune overwrite them.
  std::vector<std::pair<int64_t, std::string>> skipped;
  bool found() const { return step >= 0; }
};

// "" when the step directory is a usable checkpoint (see above), else why.
// Never throws.
std::string verify_checkpoint_step(const std::string& step_dir);
// For commands that read a model from a file the user names (generate,
// export): "" unless `path` is a training checkpoint file (root attribute
// zerorl_checkpoint_format) that fails verification, then why.  Never
// throws; a policy file, an HF folder or a missing path gives "".
std::string verify_if_checkpoint(const std::string& path);

// Collective when world_size > 1: `min_over_ranks(v)` must return the minimum
// of v over all ranks (every rank calls it the same number of times); the
// default is the identity (one process).  Each rank verifies the steps
// lazily, newest first; the ranks settle on the newest step that verifies on
// every rank.  Bad steps are skipped with a warning.  Returns step -1 when
// the root is missing or holds no usable step.
ResumePoint find_resume_checkpoint(const std::string& root, int rank, int world_size,
                                   const std::function<int64_t(int64_t)>& min_over_ranks = {});
// The same through a Comm (allreduce_scalar with kMin: exact for steps < 2^53).
ResumePoint find_resume_checkpoint(const std::string& root, Comm& comm);

// Renames the step directory <root>/step_<N> to <root>/step_<N>.corrupt
// (".corrupt.2", ... when taken), which list_checkpoint_steps ignores, so
// that neither a later save of step N nor prune_checkpoints destroys it; a
// file "why.txt" inside records `why`.  Returns the new path.  Call on one
// rank, after every rank has finished reading the checkpoints.
std::string quarantine_checkpoint(const std::string& root, int64_t step, const std::string& why);

// `--resume PATH`: PATH is a step directory or one of its rank files.
// Verifies the whole step; throws zerorl::Error naming the file and the
// reason otherwise (no fallback: the user asked for this one).  Any world
// size may resume it.
ResumePoint resolve_resume_path(const std::string& path, int rank, int world_size);

}  // namespace zerorl
