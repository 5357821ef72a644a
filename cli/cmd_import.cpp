// zerorl import: Hugging Face folder -> zerorl HDF5 model file.
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "model/hf.h"
#include "model/weights.h"
#include "trainer/policy_file.h"

namespace zerorl::cli {

static const char* kUsage =
    "usage: zerorl import --hf DIR --out PATH\n"
    "\n"
    "Reads a Hugging Face model folder (config.json + model.safetensors, or shards\n"
    "listed in model.safetensors.index.json; fp32, bf16 or fp16; per-expert or\n"
    "fused expert tensors) of a supported family (deepseek_v3, deepseek_v2,\n"
    "qwen2_moe, qwen3_moe, olmoe, qwen2, qwen3, llama; generation_config.json's\n"
    "eos_token_id replaces config.json's) and\n"
    "writes a zerorl policy file: HDF5 group 'model' with one dataset per weight\n"
    "(HF names, routed experts stacked) and the config as attribute, and the\n"
    "folder's tokenizer.json, so the file is usable as a recipe's policy.init and by\n"
    "`zerorl generate`.  A folder without tokenizer.json gives a model file only.\n"
    "Each tensor keeps its dtype, so `zerorl export` gives back the same bytes.\n"
    "\n"
    "  --hf DIR     the Hugging Face folder\n"
    "  --out PATH   the .h5 file to write (written to PATH.tmp, then renamed)\n";

static int run_import(Args& args) {
  std::string dir = args.value("--hf");
  std::string out = args.value("--out");
  args.finish();
  auto model = model::load_hf(dir);
  const bool has_tokenizer = std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json");
  if (has_tokenizer) {
    save_policy(out, *model, *data::load_tokenizer(dir));
  } else {
    model::save_model_h5(*model, out);
    std::cerr << "zerorl import: " << dir
              << " has no tokenizer.json: wrote a model file without tokenizer (not usable as "
                 "policy.init)\n";
  }
  std::cout << "imported " << dir << " -> " << out << "\n"
            << "  " << model->config().summary() << "\n"
            << "  " << model->param_report().to_string() << "\n";
  return 0;
}

ZR_REGISTER_COMMAND(import, "Hugging Face folder -> zerorl model file", kUsage, run_import);

}  // namespace zerorl::cli
