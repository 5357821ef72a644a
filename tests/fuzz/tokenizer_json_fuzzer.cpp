// libFuzzer target over tokenizer.json loading (data::tokenizer_from_json):
// a Hugging Face tokenizer.json or a zerorl character tokenizer.  A file
// that loads must encode and decode a fixed text and the input itself, and
// every id it returns must be inside the vocabulary.  Bad files must end in
// zerorl::Error; anything else is a finding.  Run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  try {
    auto tok = zerorl::data::tokenizer_from_json(in, "fuzz.json");
    for (const std::string& text :
         {std::string("What is 12+7? <think>1 2</think> \xc3\xa9\xe4\xb8\xad"),
          in.substr(0, 256)}) {
      const auto ids = tok->encode(text);
      for (int32_t id : ids)
        if (id < 0 || id >= tok->vocab_size()) __builtin_trap();
      (void)tok->decode(ids);
    }
  } catch (const zerorl::Error&) {
  }
  return 0;
}
