// The character tokenizer the tiny models use, and saving it with a model.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/char_tokenizer.h"
#include "data/corpus.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace zerorl::data {
namespace {

TEST(CharTokenizer, TagsAreSingleTokensAndEverythingElseOneCharEach) {
  auto tok = CharTokenizer::for_tasks();
  auto ids = tok.encode("<think>1+2=3</think> <answer>3</answer>");
  ASSERT_EQ(ids.size(), 1u + 5 + 1 + 1 + 1 + 1 + 1);
  EXPECT_EQ(ids[0], tok.token_to_id("<think>"));
  EXPECT_EQ(ids[1], tok.token_to_id("1"));
  EXPECT_EQ(ids[6], tok.token_to_id("</think>"));
  EXPECT_EQ(tok.decode(ids), "<think>1+2=3</think> <answer>3</answer>");
  // "<thin" is not a tag: plain characters.
  EXPECT_EQ(tok.encode("<thin").size(), 5u);
  EXPECT_GE(tok.eos_id(), 0);
  EXPECT_GE(tok.pad_id(), 0);
  EXPECT_GE(tok.bos_id(), 0);
  EXPECT_TRUE(tok.is_special(tok.eos_id()));
  EXPECT_FALSE(tok.is_special(tok.token_to_id("<think>")));
  EXPECT_EQ(tok.decode({tok.bos_id(), tok.token_to_id("x"), tok.eos_id()}, true), "x");
}

TEST(CharTokenizer, EveryCorpusDocumentRoundTrips) {
  auto tok = CharTokenizer::for_tasks();
  for (const char* task : {"addition", "multiplication", "countdown"}) {
    CorpusConfig c;
    c.task.name = task;
    CorpusGenerator gen(c);
    for (auto& d : gen.documents(0, 500)) {
      auto ids = tok.encode(d.text);
      for (int32_t id : ids) ASSERT_NE(id, tok.token_to_id("<unk>")) << d.text;
      EXPECT_EQ(tok.decode(ids), d.text);
    }
  }
}

TEST(CharTokenizer, UnknownCharactersBecomeUnkOrAnErrorWithoutOne) {
  auto tok = CharTokenizer::for_tasks();
  auto ids = tok.encode("a\xc3\xa9");  // "aé"
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[1], tok.token_to_id("<unk>"));
  CharTokenizer strict({"a", "b", "<eos>"}, {"<eos>"});
  try {
    strict.encode("abc");
    FAIL() << "unknown character accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'c' at byte 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(strict.decode({3}), Error);
  EXPECT_THROW(CharTokenizer({"a", "a"}, {}), Error);
}

TEST(CharTokenizer, SavedJsonLoadsBackIdentically) {
  CharTokenizer original({"<pad>", "<eos>", "<think>", "a", "\xce\xbb", "\n", " "},
                         {"<pad>", "<eos>"});
  std::string saved = original.to_json();
  auto back = tokenizer_from_json(saved, "attr");
  ASSERT_EQ(back->kind(), "char");
  EXPECT_EQ(back->vocab_size(), original.vocab_size());
  for (int32_t i = 0; i < original.vocab_size(); ++i) {
    EXPECT_EQ(back->id_to_token(i), original.id_to_token(i));
    EXPECT_EQ(back->is_special(i), original.is_special(i));
  }
  EXPECT_EQ(back->encode("a\xce\xbb<think>\n a"), original.encode("a\xce\xbb<think>\n a"));
  EXPECT_EQ(back->eos_id(), 1);
  EXPECT_EQ(back->to_json(), saved);
  // Through a file, as `zerorl tokenize --tokenizer` reads it.
  auto dir = testing::scratch_dir("char_tok");
  testing::spit(dir / "tok.json", saved);
  EXPECT_EQ(load_tokenizer((dir / "tok.json").string())->encode("aa"), original.encode("aa"));
  EXPECT_THROW(tokenizer_from_json("{\"type\": \"zerorl-char\", \"version\": 2, \"tokens\": []}"),
               Error);
  EXPECT_THROW(tokenizer_from_json("{\"type\": \"something\"}"), Error);
}

// Found by fuzz.tokenizer_json under UBSan: a vocab id that is a float, or
// beyond int32, was converted to int32 (undefined behaviour).  Now refused,
// naming the token (tests/fuzz/corpus/tokenizer_json/regress_float_token_id.json).
TEST(TokenizerJson, TokenIdsMustBeIntegersInRange) {
  const std::string good = testing::slurp(std::string(ZR_SOURCE_DIR) +
                                          "/tests/fuzz/corpus/tokenizer_json/byte_bpe.json");
  ASSERT_NO_THROW(tokenizer_from_json(good, "good"));
  for (const std::string bad : {"8888890000.0", "3.5", "4294967296", "-3"}) {
    std::string text = good;
    text.replace(text.find("\"ab\": 3,"), 9, "\"ab\": " + bad + ",");
    try {
      tokenizer_from_json(text, "t.json");
      ADD_FAILURE() << "id " << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("id of token 'ab'"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace zerorl::data
