// The engine's input for one rendered prompt: its token ids, after the
// tokenizer's BOS when the recipe asks for one.  Training, evaluation and
// `zerorl generate` all build their prompts here, so the three feed the
// model the same ids for the same text.
#pragma once

#include <cstdint>
#include <string>

#include "data/tokenizer.h"
#include "rollout/engine.h"

namespace zerorl::rollout {

// prepend_bos: put tok.bos_id() first when the tokenizer has a BOS token (a
// tokenizer without one gets none; a caller that must have one checks
// bos_id() itself).  `id` is the prompt's stream coordinate (PromptInput).
inline PromptInput make_prompt_input(int64_t id, const std::string& text,
                                     const data::Tokenizer& tok, bool prepend_bos) {
  PromptInput in;
  in.id = id;
  if (prepend_bos && tok.bos_id() >= 0) in.tokens.push_back(tok.bos_id());
  for (int32_t t : tok.encode(text)) in.tokens.push_back(t);
  return in;
}

}  // namespace zerorl::rollout
