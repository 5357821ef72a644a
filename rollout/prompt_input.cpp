#include "rollout/prompt_input.h"

#include "core/error.h"

namespace zerorl::rollout {

void check_prompts_fit(const std::vector<data::Example>& examples, const data::PromptTemplate& tmpl,
                       const data::Tokenizer& tok, bool prepend_bos, int64_t max_position,
                       int64_t max_new_tokens, const std::string& which) {
  size_t longest = 0;
  std::string longest_id;
  for (const auto& ex : examples) {
    const size_t n = make_prompt_input(0, tmpl.render(ex.prompt), tok, prepend_bos).tokens.size();
    if (n > longest) longest = n, longest_id = ex.id;
  }
  // The last sampled token is never fed back (rollout/engine.cpp).
  ZR_CHECK(static_cast<int64_t>(longest) + max_new_tokens - 1 <= max_position, "the longest ",
           which, " prompt (", longest_id, ", ", longest,
           " tokens with the template) + max_new_tokens (", max_new_tokens,
           ") - 1 exceeds the model's max_position_embeddings (", max_position,
           "): lower rollout.sampling.max_new_tokens or drop the longest prompts");
}

}  // namespace zerorl::rollout
