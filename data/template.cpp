#include "data/template.h"

#include "core/config.h"
#include "core/error.h"

namespace zerorl::data {

static constexpr std::string_view kPlaceholder = "{prompt}";

TemplateConfig TemplateConfig::from(const ConfigNode& n, const std::string& default_name) {
  TemplateConfig c;
  c.name = n.choice("name", {"r1zero", "tiny", "custom"}, default_name);
  if (c.name == "custom") {
    c.text = n.get<std::string>("text");
    ZR_CHECK(c.text.find(kPlaceholder) != std::string::npos, n.where("text"), ": ", n.path("text"),
             " must contain the placeholder {prompt}");
  }
  return c;
}

PromptTemplate PromptTemplate::r1zero() {
  return PromptTemplate(
      "r1zero",
      "A conversation between User and Assistant. The user asks a question, and the Assistant "
      "solves it. The assistant first thinks about the reasoning process in the mind and then "
      "provides the user with the answer. The reasoning process and answer are enclosed within "
      "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
      "process here </think> <answer> answer here </answer>. User: {prompt}. Assistant:");
}

PromptTemplate PromptTemplate::tiny() {
  return PromptTemplate("tiny", "User: {prompt}\nAssistant: <think>");
}

PromptTemplate PromptTemplate::custom(std::string text) {
  ZR_CHECK(text.find(kPlaceholder) != std::string::npos,
           "a custom template must contain the placeholder {prompt}");
  return PromptTemplate("custom", std::move(text));
}

PromptTemplate PromptTemplate::from_config(const TemplateConfig& cfg) {
  if (cfg.name == "r1zero") return r1zero();
  if (cfg.name == "tiny") return tiny();
  if (cfg.name == "custom") return custom(cfg.text);
  ZR_THROW("unknown template '", cfg.name, "' (known: r1zero, tiny, custom)");
}

std::string PromptTemplate::render(std::string_view prompt) const {
  std::string out;
  out.reserve(text_.size() + prompt.size());
  size_t pos = 0;
  for (;;) {
    size_t hit = text_.find(kPlaceholder, pos);
    if (hit == std::string::npos) break;
    out.append(text_, pos, hit - pos);
    out.append(prompt);
    pos = hit + kPlaceholder.size();
  }
  out.append(text_, pos, std::string::npos);
  return out;
}

}  // namespace zerorl::data
