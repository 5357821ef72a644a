// Sampling and stop-token checks for a whole decode batch as tensor ops on
// the logits' device (issue #15 item 4): the engine's rows never leave the
// device as logits; the host sees one byte per row (rollout/engine.h).
//
// Legend: A rows (running sequences), V vocabulary.
//
// sample_batch() draws row a's token exactly as rollout/sampling.h's
// sample_token() does with the uniform u_A[a] -- the same distribution, the
// same inverse-CDF walk, the same tie rule -- in fp64 over the fp32 logits:
//   z      = exp(x / T - max(x) / T)                 (T = 1 when greedy)
//   lse    = max(x) / T + log(sum z)
//   logp   = x[token] / T - lse                      (the untruncated tempered
//                                                      distribution, as verl/TRL)
//   greedy : token = argmax (lowest id on ties), no draw
//   else   : no truncation: the first id v with u * sum(z) < cumsum(z)[v] in
//            id order (the last id with mass if rounding runs past the end);
//            top_k / top_p: z sorted descending (stable: lower id first on
//            ties), the first k kept, then the shortest prefix whose mass
//            reaches top_p of theirs, and the same walk over that prefix.
// The uniforms come from the caller, one per non-greedy row, drawn from each
// sample's own stream Rng(seed, step, prompt_id, sample_index, kSample): a
// completion stays a function of its own stream, whatever the batch.
//
// Bits: on the CPU, ATen's cumsum adds in order, so every sum, threshold and
// comparison is the host sampler's; exp and log are ATen's vectorised ones,
// which differ from the C library's in the last bit of about 0.5% of
// values.  So tokens equal the host sampler's except for a draw within ~1e-16
// of a boundary, and log-probs agree within a few ulp of fp64
// (tests/rollout/batch_sampler_test.cpp checks both on many rows).  On CUDA
// the scan and reductions are parallel: same distribution, run-to-run the
// same bits, not the CPU's bits.
//
// stop_flags() is the device-side finishing check of one step: bit kStopToken
// when the token is in stop_ids_K, bit kStopCandidate when the token's text
// contains the last byte of a stop string (only those can complete one; the
// host then checks the text, rollout/engine.h), bit kBadLogits when the row
// has NaN logits or no finite maximum (the host then reports it, at its next
// look, with the sample and token index; the logits row is gone by then).
//
// Threads/streams: ATen ops on the current stream; no host sync inside.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "rollout/sampling.h"

namespace zerorl::rollout {

class TokenText;

struct BatchDraw {
  at::Tensor token_A;  // int64 [A]
  at::Tensor logp_A;   // fp64 [A], behaviour log-probs
  at::Tensor bad_A;    // bool [A]: NaN logits or no finite maximum (token/logp meaningless)
};

// logits_AV: fp32 (or any float dtype, upcast to fp64) [A, V] on any device;
// u_A: fp64 [A] on the same device (ignored when params.greedy()).
BatchDraw sample_batch(const at::Tensor& logits_AV, const at::Tensor& u_A,
                       const SamplingParams& params);

enum StopFlag : uint8_t { kStopToken = 1, kStopCandidate = 2, kBadLogits = 4 };

// uint8 [A] of StopFlag bits (see the header comment).  stop_ids_K: int64
// [K] (may be empty); candidate_V: bool [V] or undefined (no stop strings).
at::Tensor stop_flags(const BatchDraw& d, const at::Tensor& stop_ids_K,
                      const at::Tensor& candidate_V);

// bool [V] on the CPU: token v's text holds the last byte of one of `stops`
// (ids past text.vocab_size(): false, they add no text).  A stop string can
// only be completed by such a token.
at::Tensor stop_candidates(const TokenText& text, const std::vector<std::string>& stops, int64_t V);

}  // namespace zerorl::rollout
