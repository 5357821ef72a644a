#include "core/config.h"

#include <gtest/gtest.h>

#include <fstream>

using namespace zerorl;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

const char* kRecipe = R"(name: tiny
trainer:
  lr: 1.0e-4
  steps: 20
  loss: grpo
  betas: [0.9, 0.95]
rollout:
  group_size: 8
  temperature: 1.0
  stop: ["</answer>"]
)";

}  // namespace

TEST(Config, TypedAccessAndDefaultsAreResolved) {
  Recipe r = Recipe::from_string(kRecipe, "tiny.yaml");
  auto t = r.section("trainer");
  EXPECT_DOUBLE_EQ(t.get<double>("lr"), 1e-4);
  EXPECT_EQ(t.get<int>("steps"), 20);
  EXPECT_EQ(t.choice("loss", {"grpo", "dapo", "dr_grpo"}), "grpo");
  EXPECT_EQ(t.get<std::vector<double>>("betas"), (std::vector<double>{0.9, 0.95}));
  EXPECT_EQ(t.get<int>("warmup_steps", 5), 5);  // default
  auto ro = r.section("rollout");
  EXPECT_EQ(ro.get<int>("group_size"), 8);
  EXPECT_DOUBLE_EQ(ro.get<double>("temperature"), 1.0);
  EXPECT_EQ(ro.get<std::vector<std::string>>("stop"), std::vector<std::string>{"</answer>"});
  EXPECT_EQ(r.root().get<std::string>("name"), "tiny");
  r.check_all_read();
  // The default appears in the resolved recipe, which parses back to the same values.
  std::string dumped = r.dump();
  Recipe back = Recipe::from_string(dumped, "resolved.yaml");
  EXPECT_EQ(back.section("trainer").get<int>("warmup_steps"), 5);
  EXPECT_DOUBLE_EQ(back.section("trainer").get<double>("lr"), 1e-4);
}

TEST(Config, DefaultFloatsAreWrittenInTheirShortestRoundTripForm) {
  Recipe r = Recipe::from_string("a:\n  given: 1\n", "f.yaml");
  auto a = r.section("a");
  const double third = 1.0 / 3.0;
  a.get<double>("tenth", 0.1);
  a.get<double>("small", 1e-6);
  a.get<double>("third", third);
  a.get<double>("one", 1.0);
  a.get<double>("thousand", 1000.0);
  a.get<float>("f", 0.1f);
  a.get<std::vector<double>>("betas", {0.9, 0.95});
  const std::string dumped = r.dump();
  EXPECT_NE(dumped.find("tenth: 0.1\n"), std::string::npos) << dumped;
  EXPECT_NE(dumped.find("small: 1e-06\n"), std::string::npos) << dumped;
  EXPECT_NE(dumped.find("one: 1\n"), std::string::npos) << dumped;
  EXPECT_NE(dumped.find("thousand: 1000\n"), std::string::npos) << dumped;
  EXPECT_NE(dumped.find("f: 0.1\n"), std::string::npos) << dumped;
  EXPECT_NE(dumped.find("- 0.95\n"), std::string::npos) << dumped;
  EXPECT_EQ(dumped.find("0000000"), std::string::npos) << dumped;
  EXPECT_EQ(dumped.find("9999999"), std::string::npos) << dumped;
  // Shortest, yet every value reads back to the same bits.
  Recipe back = Recipe::from_string(dumped, "resolved.yaml");
  EXPECT_EQ(back.section("a").get<double>("tenth"), 0.1);
  EXPECT_EQ(back.section("a").get<double>("small"), 1e-6);
  EXPECT_EQ(back.section("a").get<double>("third"), third);
  EXPECT_EQ(back.section("a").get<float>("f"), 0.1f);
}

TEST(Config, UnknownKeyNamesKeyFileAndLine) {
  Recipe r = Recipe::from_string(std::string(kRecipe) + "  temprature: 0.6\n", "tiny.yaml");
  auto t = r.section("trainer");
  t.get<double>("lr");
  t.get<int>("steps");
  t.get<std::string>("loss");
  t.get<std::vector<double>>("betas");
  auto ro = r.section("rollout");
  ro.get<int>("group_size");
  ro.get<double>("temperature");
  ro.get<std::vector<std::string>>("stop");
  r.root().get<std::string>("name");
  std::string e = error_of([&] { r.check_all_read(); });
  EXPECT_NE(e.find("rollout.temprature"), std::string::npos) << e;
  EXPECT_NE(e.find("tiny.yaml:11:"), std::string::npos) << e;
}

TEST(Config, UnknownSectionIsAnError) {
  Recipe r = Recipe::from_string("trainer:\n  lr: 1\ntrainr:\n  lr: 2\n", "x.yaml");
  r.section("trainer").get<double>("lr");
  std::string e = error_of([&] { r.check_all_read(); });
  EXPECT_NE(e.find("'trainr'"), std::string::npos) << e;
  EXPECT_NE(e.find("x.yaml:3:1"), std::string::npos) << e;
}

TEST(Config, WrongTypeNamesKeyLineAndValue) {
  Recipe r = Recipe::from_string("trainer:\n  steps: many\n  lr: 1.5\n", "bad.yaml");
  std::string e = error_of([&] { r.section("trainer").get<int>("steps"); });
  EXPECT_NE(e.find("trainer.steps"), std::string::npos) << e;
  EXPECT_NE(e.find("bad.yaml:2:3"), std::string::npos) << e;
  EXPECT_NE(e.find("an integer"), std::string::npos) << e;
  EXPECT_NE(e.find("many"), std::string::npos) << e;
  // A float where an integer is expected is refused, not truncated.
  e = error_of([&] { r.section("trainer").get<int>("lr"); });
  EXPECT_NE(e.find("trainer.lr"), std::string::npos) << e;
  // A list where a number is expected.
  Recipe l = Recipe::from_string("a:\n  b: [1, 2]\n", "l.yaml");
  e = error_of([&] { l.section("a").get<double>("b"); });
  EXPECT_NE(e.find("a.b"), std::string::npos) << e;
}

TEST(Config, MissingRequiredKeyAndBadChoice) {
  Recipe r = Recipe::from_string("trainer:\n  loss: ppo\n", "c.yaml");
  std::string e = error_of([&] { r.section("trainer").get<double>("lr"); });
  EXPECT_NE(e.find("missing required key 'trainer.lr'"), std::string::npos) << e;
  e = error_of([&] { r.section("trainer").choice("loss", {"grpo", "dapo"}); });
  EXPECT_NE(e.find("one of {grpo, dapo}"), std::string::npos) << e;
  EXPECT_NE(e.find("c.yaml:2:3"), std::string::npos) << e;
  EXPECT_NE(e.find("ppo"), std::string::npos) << e;
}

TEST(Config, SectionThatIsAValueIsAnError) {
  Recipe r = Recipe::from_string("trainer: 3\n", "s.yaml");
  std::string e = error_of([&] { r.section("trainer"); });
  EXPECT_NE(e.find("must be a section"), std::string::npos) << e;
}

TEST(Config, SyntaxErrorNamesFileAndLine) {
  std::string e = error_of([] { Recipe::from_string("a:\n  b: [1, 2\nc: 3\n", "syn.yaml"); });
  EXPECT_NE(e.find("syn.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
}

TEST(Config, OverridesSetNestedTypedValues) {
  Recipe r = Recipe::from_string(kRecipe, "tiny.yaml");
  r.apply_overrides({"trainer.lr=1e-6", "rollout.group_size=16", "trainer.new.deep=true",
                     "rollout.stop=[\"</answer>\", \"\\n\\n\"]"});
  EXPECT_DOUBLE_EQ(r.section("trainer").get<double>("lr"), 1e-6);
  EXPECT_EQ(r.section("rollout").get<int>("group_size"), 16);
  EXPECT_TRUE(r.section("trainer").section("new").get<bool>("deep"));
  EXPECT_EQ(r.section("rollout").get<std::vector<std::string>>("stop").size(), 2u);
}

TEST(Config, BadOverridesAreNamed) {
  Recipe r = Recipe::from_string(kRecipe, "tiny.yaml");
  EXPECT_NE(error_of([&] { r.apply_overrides({"trainer.lr"}); }).find("key.sub=value"),
            std::string::npos);
  EXPECT_NE(error_of([&] { r.apply_overrides({"=3"}); }).find("malformed key"), std::string::npos);
  EXPECT_NE(error_of([&] { r.apply_overrides({"trainer.lr.x=3"}); }).find("not a section"),
            std::string::npos);
  // A typo'd override is reported as coming from the command line.
  Recipe r2 = Recipe::from_string("trainer:\n  lr: 1\n", "t.yaml");
  r2.apply_overrides({"trainer.lrr=2"});
  r2.section("trainer").get<double>("lr");
  std::string e = error_of([&] { r2.check_all_read(); });
  EXPECT_NE(e.find("command line 'trainer.lrr=2'"), std::string::npos) << e;
  // A wrong type from the command line names the override.
  Recipe r3 = Recipe::from_string("trainer:\n  lr: 1\n", "t.yaml");
  r3.apply_overrides({"trainer.lr=fast"});
  e = error_of([&] { r3.section("trainer").get<double>("lr"); });
  EXPECT_NE(e.find("command line 'trainer.lr=fast'"), std::string::npos) << e;
}

TEST(Config, FreeFormSectionsCanBeMarkedRead) {
  Recipe r = Recipe::from_string("plugin:\n  anything: 1\n  nested: {a: 2}\n", "p.yaml");
  YAML::Node raw = r.root().raw("plugin");
  EXPECT_EQ(raw["nested"]["a"].as<int>(), 2);
  r.check_all_read();
}

TEST(Config, MissingFileIsNamed) {
  std::string e = error_of([] { Recipe::from_file("/nonexistent/recipe.yaml"); });
  EXPECT_NE(e.find("/nonexistent/recipe.yaml"), std::string::npos) << e;
}
