// zerorl export: a policy file, model file or checkpoint -> Hugging Face folder.
#include <iostream>

#include "cli/command.h"
#include "core/error.h"
#include "core/h5.h"
#include "model/hf.h"
#include "trainer/policy_file.h"

namespace zerorl::cli {

static const char* kUsage =
    "usage: zerorl export --ckpt PATH --hf DIR [--dtype keep|fp32|bf16|fp16] [--max-shard-mb N]\n"
    "\n"
    "Writes a zerorl model as a Hugging Face folder: config.json and\n"
    "model.safetensors (per-expert tensor names, loadable by transformers' class of\n"
    "the model's family, e.g. Qwen3MoeForCausalLM), and with the model's tokenizer\n"
    "tokenizer.json, tokenizer_config.json and generation_config.json (end-of-text\n"
    "ids), so AutoTokenizer and generate() work on the folder and zerorl reads it\n"
    "back.  A checkpoint is verified first and refused when it fails.\n"
    "\n"
    "  --ckpt PATH        a policy file (`zerorl pretrain`, `zerorl import`), a\n"
    "                     training checkpoint step folder (runs/NAME/checkpoints/\n"
    "                     step_N) or one of its rank files, or a model file\n"
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
  const Policy policy = load_model_for_command(ckpt, "--ckpt");
  if (policy.tokenizer) {
    save_hf_policy(policy, dir, opt);
  } else {
    model::save_hf(*policy.model, dir, opt);
    std::cerr << "zerorl export: " << ckpt
              << " holds no tokenizer: wrote the model without tokenizer files\n";
  }
  std::cout << "exported " << ckpt << " -> " << dir << "\n  " << policy.model->config().summary()
            << "\n";
  return 0;
}

ZR_REGISTER_COMMAND(export, "zerorl model file -> Hugging Face folder", kUsage, run_export);

}  // namespace zerorl::cli
