// Tokenizer throughput: zerorl's byte-level BPE on a JSON list of lines,
// single-threaded, MB/s of UTF-8 input.  The peer figure comes from
// bench/tokenizer_peer.py on the same files; docs/PERFORMANCE.md ("Tokenizer")
// has the commands.
//
//   bench_tokenizer_throughput --tokenizer FILE --text LINES.json [--repeat 5]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/tokenizer.h"

int main(int argc, char** argv) {
  std::string tok_path, text_path;
  int repeat = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--tokenizer"))
      tok_path = argv[i + 1];
    else if (!std::strcmp(argv[i], "--text"))
      text_path = argv[i + 1];
    else if (!std::strcmp(argv[i], "--repeat"))
      repeat = std::atoi(argv[i + 1]);
  }
  if (tok_path.empty() || text_path.empty() || repeat < 1) {
    std::cerr
        << "usage: bench_tokenizer_throughput --tokenizer FILE --text LINES.json [--repeat N]\n";
    return 2;
  }
  try {
    auto tok = zerorl::data::load_tokenizer(tok_path);
    std::ifstream in(text_path);
    std::stringstream ss;
    ss << in.rdbuf();
    auto lines = nlohmann::json::parse(ss.str()).get<std::vector<std::string>>();
    double mb = 0;
    for (auto& s : lines) mb += s.size() / 1e6;
    auto pass = [&] {
      size_t tokens = 0;
      for (auto& s : lines) tokens += tok->encode(s).size();
      return tokens;
    };
    size_t tokens = pass();  // warm-up: fills the piece cache, as the peer's does
    double best = 1e30;
    for (int r = 0; r < repeat; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      pass();
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, s);
    }
    // Cold: a fresh tokenizer, one pass, no cache.
    auto cold_tok = zerorl::data::load_tokenizer(tok_path);
    auto t0 = std::chrono::steady_clock::now();
    for (auto& s : lines) cold_tok->encode(s);
    double cold = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "zerorl encode: %.2f MB/s (%zu tokens, %.2f MB, best of %d); cold first pass %.2f MB/s\n",
        mb / best, tokens, mb, repeat, mb / cold);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
