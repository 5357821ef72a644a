// Prompt templates: how a problem becomes the text the policy continues.
//
//   r1zero  the template of the DeepSeek-R1 paper (Table 1), verbatim, with
//           the problem in place of "prompt":
//             "A conversation between User and Assistant. ... User: {prompt}.
//              Assistant:"
//   tiny    a short template for the tiny character models (context of a few
//           hundred characters), the same shape with the think tag opened:
//             "User: {prompt}\nAssistant: <think>"
//   custom  any text with a {prompt} placeholder (e.g. a chat template), from
//           a recipe's `template.text`.
// render() substitutes every {prompt}; no other braces are interpreted.
#pragma once

#include <string>
#include <string_view>

namespace zerorl {
class ConfigNode;
}

namespace zerorl::data {

struct TemplateConfig {
  std::string name = "r1zero";  // r1zero | tiny | custom
  std::string text;             // custom only: must contain {prompt}
  // Reads a `template:` section; a custom text without {prompt} is an error
  // naming the key.  `default_name` is used when the section has no name.
  static TemplateConfig from(const ConfigNode& n, const std::string& default_name = "r1zero");
};

class PromptTemplate {
 public:
  static PromptTemplate r1zero();
  static PromptTemplate tiny();
  // Throws if text has no {prompt}.
  static PromptTemplate custom(std::string text);
  static PromptTemplate from_config(const TemplateConfig& cfg);

  std::string render(std::string_view prompt) const;
  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }

 private:
  PromptTemplate(std::string name, std::string text)
      : name_(std::move(name)), text_(std::move(text)) {}
  std::string name_, text_;
};

}  // namespace zerorl::data
