#include <gtest/gtest.h>

#include "core/config.h"
#include "core/error.h"
#include "data/template.h"

namespace zerorl::data {
namespace {

TEST(Template, R1ZeroIsThePapersTextWithTheProblemInserted) {
  std::string s = PromptTemplate::r1zero().render("What is 2+3");
  EXPECT_EQ(s.rfind("A conversation between User and Assistant.", 0), 0u);
  EXPECT_NE(s.find("<think> reasoning process here </think> <answer> answer here </answer>"),
            std::string::npos);
  // The problem comes after the instructions, then the assistant's turn begins.
  std::string tail = "User: What is 2+3. Assistant:";
  ASSERT_GE(s.size(), tail.size());
  EXPECT_EQ(s.substr(s.size() - tail.size()), tail);
}

TEST(Template, TinyOpensTheThinkBlock) {
  EXPECT_EQ(PromptTemplate::tiny().render("What is 12 + 7?"),
            "User: What is 12 + 7?\nAssistant: <think>");
}

TEST(Template, CustomFromRecipeReplacesEveryPlaceholderAndOnlyIt) {
  auto r = Recipe::from_string(
      "template:\n  name: custom\n  text: \"<|im_start|>user\\n{prompt} "
      "{x}<|im_end|>\\n{prompt}\"\n",
      "t.yaml");
  auto t = PromptTemplate::from_config(TemplateConfig::from(r.section("template")));
  EXPECT_EQ(t.render("Q"), "<|im_start|>user\nQ {x}<|im_end|>\nQ");
  auto bad =
      Recipe::from_string("template:\n  name: custom\n  text: \"no placeholder\"\n", "b.yaml");
  try {
    TemplateConfig::from(bad.section("template"));
    FAIL() << "template without {prompt} accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.yaml:3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("template.text"), std::string::npos) << e.what();
  }
  EXPECT_THROW(PromptTemplate::custom("nothing"), Error);
}

}  // namespace
}  // namespace zerorl::data
