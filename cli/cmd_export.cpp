// zerorl export: zerorl model file (or a checkpoint's model group) -> Hugging Face folder.
#include <iostream>

#include "cli/command.h"
#include "core/error.h"
#include "core/h5.h"
#include "trainer/checkpoint.h"
#include "model/hf.h"
#include "model/weights.h"

namespace zerorl::cli {

static const char* kUsage =
    "usage: zerorl export --ckpt PATH --hf DIR [--dtype keep|fp32|bf16|fp16] [--max-shard-mb N]\n"
    "\n"
    "Writes the model held in a zerorl HDF5 file (its 'model' group, as written by\n"
    "`zerorl import` and by training checkpoints) as a Hugging Face folder:\n"
    "config.json and model.safetensors (per-expert tensor names, loadable by\n"
    "transformers' class of the model's family, e.g. Qwen3MoeForCausalLM).\n"
    "\n"
    "  --ckpt PATH        zerorl model file or checkpoint\n"
    "  --hf DIR           output folder (created; earlier *.safetensors removed)\n"
    "  --dtype D          cast weights (routers stay fp32); default keep\n"
    "  --max-shard-mb N   shard into files of at most N MiB with an index (default: one file)\n";

static int run_export(Args& args) {
  std::string ckpt = args.value("--ckpt");
  std::string dir = args.value("--hf");
  std::string dtype = args.value("--dtype", "keep");
  long long shard_mb = args.int_value("--max-shard-mb", 0);
  args.finish();
  model::HfSaveOptions opt;
  if (dtype == "fp32")
    opt.dtype = at::kFloat;
  else if (dtype == "bf16")
    opt.dtype = at::kBFloat16;
  else if (dtype == "fp16")
    opt.dtype = at::kHalf;
  else if (dtype != "keep")
    throw UsageError("--dtype must be keep, fp32, bf16 or fp16, got '" + dtype + "'");
  if (shard_mb < 0) throw UsageError("--max-shard-mb must be >= 0");
  opt.max_shard_bytes = shard_mb * (1LL << 20);
  const std::string why = verify_if_checkpoint(ckpt);
  ZR_CHECK(why.empty(), "--ckpt ", ckpt, ": the checkpoint fails verification (", why,
           "); refusing to export it");
  auto model = model::load_model_h5(ckpt);
  model::save_hf(*model, dir, opt);
  std::cout << "exported " << ckpt << " -> " << dir << "\n  " << model->config().summary() << "\n";
  return 0;
}

ZR_REGISTER_COMMAND(export, "zerorl model file -> Hugging Face folder", kUsage, run_export);

}  // namespace zerorl::cli
