#include "data/corpus.h"

#include "core/config.h"
#include "core/error.h"
#include "core/rng.h"

namespace zerorl::data {

const char* doc_kind_name(DocKind k) {
  switch (k) {
    case DocKind::kBare:
      return "bare";
    case DocKind::kWorked:
      return "worked";
    case DocKind::kTaggedBare:
      return "tagged_bare";
    case DocKind::kTaggedWorked:
      return "tagged_worked";
    case DocKind::kNoise:
      return "noise";
    case DocKind::kStep:
      return "step";
  }
  return "?";
}

bool uses_worked_steps(std::string_view completion) { return count_worked_steps(completion) >= 2; }

CorpusConfig CorpusConfig::from(const ConfigNode& n) {
  CorpusConfig c;
  c.task = TaskConfig::from(n.section("task"));
  c.prompt_template = TemplateConfig::from(n.section("template"), "tiny");
  c.seed = n.get<uint64_t>("seed", c.seed);
  ConfigNode mix = n.section("mix");
  c.bare = mix.get<double>("bare", c.bare);
  c.worked = mix.get<double>("worked", c.worked);
  c.tagged = mix.get<double>("tagged", c.tagged);
  c.noise = mix.get<double>("noise", c.noise);
  c.steps = mix.get<double>("steps", c.steps);
  c.tagged_worked_fraction = n.get<double>("tagged_worked_fraction", c.tagged_worked_fraction);
  c.reflect_fraction = n.get<double>("reflect_fraction", c.reflect_fraction);
  c.step_check_fraction = n.get<double>("step_check_fraction", c.step_check_fraction);
  c.reflect_confirm_fraction =
      n.get<double>("reflect_confirm_fraction", c.reflect_confirm_fraction);
  c.worked_check_fraction = n.get<double>("worked_check_fraction", c.worked_check_fraction);
  try {
    c.validate();
  } catch (const Error& e) {
    ZR_THROW(n.where(), ": ", n.path(), ": ", e.what());
  }
  return c;
}

void CorpusConfig::validate() const {
  task.validate();
  ZR_CHECK(bare >= 0 && worked >= 0 && tagged >= 0 && noise >= 0 && steps >= 0 &&
               bare + worked + tagged + noise + steps > 0,
           "mix shares must be >= 0 and not all zero");
  ZR_CHECK(tagged_worked_fraction >= 0 && tagged_worked_fraction <= 1,
           "tagged_worked_fraction must be in [0, 1], got ", tagged_worked_fraction);
  ZR_CHECK(reflect_fraction >= 0 && reflect_fraction <= 1,
           "reflect_fraction must be in [0, 1], got ", reflect_fraction);
  ZR_CHECK(step_check_fraction >= 0 && step_check_fraction <= 1,
           "step_check_fraction must be in [0, 1], got ", step_check_fraction);
  ZR_CHECK(reflect_confirm_fraction >= 0 && reflect_confirm_fraction <= 1,
           "reflect_confirm_fraction must be in [0, 1], got ", reflect_confirm_fraction);
  ZR_CHECK(worked_check_fraction >= 0 && worked_check_fraction <= 1,
           "worked_check_fraction must be in [0, 1], got ", worked_check_fraction);
  ZR_CHECK((reflect_fraction == 0 && worked_check_fraction == 0 && steps == 0 &&
            step_check_fraction == 0) ||
               task.name == "sum",
           "reflect_fraction, worked_check_fraction, step_check_fraction and mix.steps need task "
           "sum (the only task with reflective solutions and step problems), got task ",
           task.name);
}

CorpusGenerator::CorpusGenerator(CorpusConfig cfg)
    : cfg_(std::move(cfg)),
      task_(make_task(cfg_.task)),
      template_(PromptTemplate::from_config(cfg_.prompt_template)) {
  cfg_.validate();
}

namespace {

template <size_t N>
const char* pick(Rng& rng, const char* const (&options)[N]) {
  return options[rng.below(N)];
}

// The problem stated without the "What is" frame: "12 + 7" or the countdown prompt.
std::string problem_phrase(const Example& ex) {
  if (ex.task == "countdown") return ex.prompt;
  if (ex.task == "sum") return ex.prompt.substr(8, ex.prompt.size() - 9);  // "What is " ... "?"
  return str_cat(ex.meta.at("a").get<uint64_t>(), " ", ex.meta.at("op").get<std::string>(), " ",
                 ex.meta.at("b").get<uint64_t>());
}

std::string bare_doc(const Example& ex, Rng& rng) {
  if (ex.task == "countdown") {
    static const char* const forms[] = {"%P\nAnswer: %A", "%P %A", "Q: %P\nA: %A"};
    std::string f = pick(rng, forms), out;
    for (size_t i = 0; i < f.size(); ++i) {
      if (f[i] == '%' && f[i + 1] == 'P') {
        out += ex.prompt;
        ++i;
      } else if (f[i] == '%' && f[i + 1] == 'A') {
        out += ex.answer;
        ++i;
      } else
        out += f[i];
    }
    return out;
  }
  std::string p = problem_phrase(ex);
  switch (rng.below(4)) {
    case 0:
      return str_cat(p, " = ", ex.answer);
    case 1:
      return str_cat(ex.prompt, " ", ex.answer);
    case 2:
      return str_cat("Q: ", ex.prompt, "\nA: ", ex.answer);
    default:
      return str_cat(ex.prompt, "\nThe answer is ", ex.answer, ".");
  }
}

std::string worked_doc(const Example& ex, const std::string& worked, Rng& rng) {
  switch (rng.below(3)) {
    case 0:
      return str_cat(ex.prompt, " ", worked);
    case 1:
      return str_cat("Q: ", ex.prompt, "\nA: ", worked);
    default:
      return str_cat(ex.prompt, "\nStep by step: ", worked);
  }
}

std::string noise_doc(const Example& ex, const std::string& worked, Rng& rng) {
  switch (rng.below(3)) {
    case 0: {  // random printable characters
      std::string s;
      size_t n = 10 + rng.below(60);
      for (size_t i = 0; i < n; ++i) s += static_cast<char>(' ' + rng.below(95));
      return s;
    }
    case 1: {  // a stated answer with one wrong digit (web text has errors)
      std::string wrong = ex.answer;
      size_t k = rng.below(wrong.size());
      if (wrong[k] >= '0' && wrong[k] <= '9')
        wrong[k] = static_cast<char>('0' + (wrong[k] - '0' + 1 + rng.below(9)) % 10);
      return str_cat(ex.prompt, " ", wrong);
    }
    default: {  // a worked solution cut off mid-way
      std::string full = worked_doc(ex, worked, rng);
      return full.substr(0, 1 + rng.below(full.size()));
    }
  }
}

}  // namespace

std::string CorpusGenerator::tagged_completion(const Example& ex, bool worked, uint64_t variant,
                                               Check check) const {
  std::string think;
  if (worked) {
    think = check == Check::kNone
                ? task_->worked_solution(ex)
                : task_->reflective_solution(ex, variant, check == Check::kCatchesSlip);
  } else {
    // Short remarks without '=' (so uses_worked_steps() tells them apart).
    static const char* const remarks[] = {"I know this one.",  "Easy.",      "The answer is %A.",
                                          "I think it is %A.", "Quick: %A.", ""};
    std::string r = remarks[variant % std::size(remarks)];
    size_t at = r.find("%A");
    if (at != std::string::npos) r.replace(at, 2, ex.answer);
    think = r;
  }
  // The tiny template ends in "<think>"; other templates leave the tag to the model.
  bool opened = template_.text().size() >= 7 &&
                template_.text().compare(template_.text().size() - 7, 7, "<think>") == 0;
  std::string out = opened ? "" : " <think>";
  out += think.empty() ? " " : " " + think + " ";
  out += "</think> <answer>" + ex.answer + "</answer>";
  return out;
}

Document CorpusGenerator::document(uint64_t index) const {
  Rng rng(cfg_.seed, index, 0, 0, RngPurpose::kData);
  // Problems come from the train split only; the index space is large enough
  // that a problem repeats only as often as the split is small.
  Example ex = task_->generate(Split::kTrain, rng.next_u64() >> 16);
  double total = cfg_.bare + cfg_.worked + cfg_.tagged + cfg_.noise + cfg_.steps;
  double u = rng.uniform() * total;
  Document d;
  d.answer = ex.answer;
  d.prompt = ex.prompt;
  std::string worked = task_->worked_solution(ex);
  if ((u -= cfg_.bare) < 0) {
    d.kind = DocKind::kBare;
    d.text = bare_doc(ex, rng);
  } else if ((u -= cfg_.worked) < 0) {
    d.kind = DocKind::kWorked;
    // Drawn only when worked checks are on, so that other corpora keep their
    // bits.  A check here goes on with the chain to the answer, as inside
    // <think>: the continuation after a check is what run 8's base lacked
    // (docs/REPRODUCTION.md).
    if (cfg_.worked_check_fraction > 0 && rng.uniform() < cfg_.worked_check_fraction) {
      d.reflects = true;
      d.slip = rng.below(2) == 0;
      worked = task_->reflective_solution(ex, rng.next_u64(), d.slip);
    }
    d.text = worked_doc(ex, worked, rng);
  } else if ((u -= cfg_.tagged) < 0) {
    bool w = rng.uniform() < cfg_.tagged_worked_fraction;
    d.kind = w ? DocKind::kTaggedWorked : DocKind::kTaggedBare;
    // Drawn only when reflection is on, so that corpora without it keep their bits.
    d.reflects = w && cfg_.reflect_fraction > 0 && rng.uniform() < cfg_.reflect_fraction;
    // Drawn only when confirming checks are on (other corpora keep their bits).
    d.slip = d.reflects &&
             !(cfg_.reflect_confirm_fraction > 0 && rng.uniform() < cfg_.reflect_confirm_fraction);
    const Check check = !d.reflects ? Check::kNone
                        : d.slip    ? Check::kCatchesSlip
                                    : Check::kConfirms;
    d.text = template_.render(ex.prompt) + tagged_completion(ex, w, rng.next_u64(), check);
  } else if ((u -= cfg_.steps) < 0) {
    d.kind = DocKind::kStep;
    const Task::Step step = task_->step_problem(ex, rng.next_u64());
    Example pair = ex;
    pair.prompt = step.prompt;
    // Drawn only when step checks are on, so that other corpora keep their bits.
    if (cfg_.step_check_fraction > 0 && rng.uniform() < cfg_.step_check_fraction) {
      d.reflects = true;
      d.slip = rng.below(2) == 0;
      d.text = worked_doc(pair, d.slip ? step.caught : step.confirmed, rng);
    } else {
      d.text = worked_doc(pair, step.worked, rng);
    }
    d.prompt = step.prompt;
    d.answer = step.answer;
  } else {
    d.kind = DocKind::kNoise;
    d.text = noise_doc(ex, worked, rng);
    d.answer.clear();
  }
  return d;
}

std::vector<Document> CorpusGenerator::documents(uint64_t begin, uint64_t count) const {
  std::vector<Document> out;
  out.reserve(count);
  for (uint64_t i = begin; i < begin + count; ++i) out.push_back(document(i));
  return out;
}

}  // namespace zerorl::data
