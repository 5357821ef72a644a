// The engine's input for one rendered prompt: its token ids, after the
// tokenizer's BOS when the recipe asks for one.  Training, evaluation and
// `zerorl generate` all build their prompts here, so the three feed the
// model the same ids for the same text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/example.h"
#include "data/template.h"
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

// Every example's prompt, rendered by `tmpl` and built by make_prompt_input,
// leaves room for `max_new_tokens` within `max_position` (the model's
// max_position_embeddings): the start-time check of `zerorl train` (train
// and test sets) and `zerorl eval` (test set), so a long prompt stops the
// command before any compute rather than at its first rollout.  Throws
// zerorl::Error naming the longest prompt's id and length, `which` set
// ("training", "test"), and the keys to change.
void check_prompts_fit(const std::vector<data::Example>& examples, const data::PromptTemplate& tmpl,
                       const data::Tokenizer& tok, bool prepend_bos, int64_t max_position,
                       int64_t max_new_tokens, const std::string& which);

}  // namespace zerorl::rollout
