"""Hugging Face `tokenizers` as the oracle for zerorl's byte-level BPE.

  bpe_oracle.py train OUT_DIR        train byte-level BPEs on generated text and
                                     write OUT_DIR/{qwen2,gpt2,gpt2_prefix,llama3}.json
  bpe_oracle.py encode TOK LINES OUT LINES is a JSON list of strings; OUT gets
                                     {"ids": [[...]], "decoded": [...]}

Only called from tests (tests/data/bpe_parity_test.cpp) and benchmarks.
"""
import json
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, trainers

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

WORDS = {
    "en": "the model learns to reason before it answers and the reward is a rule "
          "which checks the final answer against the gold one while length grows".split(),
    "de": "Die Größe der Übung wächst täglich; Straße Bäume Müller schön fünf".split(),
    "fr": "élève déjà où garçon français été crème brûlée Noël naïve".split(),
    "ru": "модель учится рассуждать прежде чем ответить награда правило".split(),
    "el": "Η γλώσσα είναι όμορφη και η μαθηματική σκέψη αξίζει".split(),
    "zh": ["模型", "学会", "推理", "答案", "奖励", "强化学习", "数学", "问题", "思考", "验证"],
    "ja": ["モデル", "は", "考え", "てから", "答える", "。", "数学", "の", "問題", "ですね"],
    "ko": ["모델은", "답하기", "전에", "생각한다", "보상", "수학", "문제"],
    "ar": "النموذج يتعلم التفكير قبل الإجابة".split(),
    "hi": "मॉडल उत्तर देने से पहले सोचता है".split(),
    "emoji": ["🙂", "🚀", "👍🏽", "🇩🇪", "👨‍👩‍👧", "🧠", "✨", "🔥🔥"],
}
CODE = [
    "def f(x):\n    return x * 2 + 1\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "if __name__ == '__main__':\n    main()\n",
    "const auto& [k, v] = *it;  // structured binding\n",
    "SELECT name, COUNT(*) FROM runs WHERE reward > 0.5 GROUP BY name;\n",
    "x = np.array([1.0, 2.5, -3e-4])\n",
]


def math_line(rng):
    a, b = rng.randint(0, 10**rng.randint(1, 6)), rng.randint(0, 10**rng.randint(1, 4))
    op = rng.choice(["+", "-", "*", "/", "^"])
    forms = [f"{a} {op} {b} = ?", f"$\\frac{{{a}}}{{{b}}}$", f"Compute {a}{op}{b}.",
             f"<think>{a}+{b}</think> <answer>{a + b}</answer>", f"x^{a % 9} + {b}x = 0"]
    return rng.choice(forms)


def text_line(rng):
    kind = rng.random()
    if kind < 0.15:
        return rng.choice(CODE)
    if kind < 0.35:
        return math_line(rng)
    lang = rng.choice(list(WORDS))
    sep = "" if lang in ("zh", "ja") else " "
    words = [rng.choice(WORDS[lang]) for _ in range(rng.randint(3, 14))]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), rng.choice(WORDS["emoji"]))
    line = sep.join(words)
    if rng.random() < 0.2:
        line += rng.choice([".", "!", "?", "...", " -- ", "'s", "'LL"])
    return line


def corpus(seed, n):
    rng = random.Random(seed)
    return [text_line(rng) for _ in range(n)]


def train(out_dir):
    lines = corpus(1234, 30000)
    specials = [AddedToken("<|endoftext|>", special=True, normalized=False),
                AddedToken("<|im_start|>", special=True, normalized=False),
                AddedToken("<|im_end|>", special=True, normalized=False)]
    variants = {
        "qwen2": (normalizers.NFC(), pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])),
        "gpt2": (None, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)),
    }
    for name, (norm, pre) in variants.items():
        tok = Tokenizer(models.BPE())
        if norm is not None:
            tok.normalizer = norm
        tok.pre_tokenizer = pre
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=6000, min_frequency=2, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tok.train_from_iterator(lines, trainer)
        tok.add_tokens([AddedToken("<think>", normalized=False),
                        AddedToken("</think>", normalized=False),
                        AddedToken("<answer>", normalized=False),
                        AddedToken("</answer>", normalized=False)])
        tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True, normalized=False)])
        tok.save(f"{out_dir}/{name}.json")
        if name == "gpt2":
            # GPT-2/RoBERTa style with a prefix space added to every segment.
            doc = json.loads(tok.to_str())
            doc["pre_tokenizer"]["add_prefix_space"] = True
            Tokenizer.from_str(json.dumps(doc)).save(f"{out_dir}/gpt2_prefix.json")
        if name == "qwen2":
            # Llama 3 style: same pipeline, whole-word vocabulary hits skip the merges.
            doc = json.loads(tok.to_str())
            doc["model"]["ignore_merges"] = True
            Tokenizer.from_str(json.dumps(doc)).save(f"{out_dir}/llama3.json")


def encode(tok_path, lines_path, out_path):
    tok = Tokenizer.from_file(tok_path)
    with open(lines_path, encoding="utf-8") as f:
        lines = json.load(f)
    ids = [tok.encode(line, add_special_tokens=False).ids for line in lines]
    decoded = [tok.decode(i, skip_special_tokens=False) for i in ids]
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"ids": ids, "decoded": decoded}, f, ensure_ascii=False)


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2])
    elif sys.argv[1] == "encode":
        encode(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: bpe_oracle.py train OUT_DIR | encode TOK LINES OUT")
