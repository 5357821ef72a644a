/* zerorl reward plug-in C ABI, version 1.
 *
 * A plug-in is a shared library exporting ONE function:
 *
 *   const zr_reward_plugin_v1* zr_reward_plugin_entry(uint32_t host_abi_version);
 *
 * zerorl calls it once after dlopen() with ZR_REWARD_PLUGIN_ABI_VERSION.  The
 * plug-in returns a pointer to a static table whose abi_version it supports,
 * or NULL if it cannot serve that host version.  A table whose abi_version
 * differs from the host's is rejected with an error naming both versions.
 *
 * Lifetime and threads:
 *   init(options_json, err, err_cap) -> state  once per reward instance; the
 *       options are the recipe's `options:` mapping as a JSON object text.
 *       Return NULL and write a NUL-terminated reason into err on failure.
 *   score(state, sample, &value, err, err_cap) -> 0 on success.  Nonzero
 *       means "this sample gets reward 0"; write the reason into err.  All
 *       sample strings are UTF-8 with explicit lengths (not NUL-terminated).
 *       If thread_safe is 0 the host serialises calls; otherwise score() may
 *       run on several threads at once with the same state.
 *   destroy(state)  once, when the reward is destroyed.
 * The plug-in must not call exit() or abort(), and must not keep pointers to
 * the sample after score() returns.  A NaN/Inf value is treated as an error.
 */
#ifndef ZERORL_REWARDS_PLUGIN_ABI_H_
#define ZERORL_REWARDS_PLUGIN_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZR_REWARD_PLUGIN_ABI_VERSION 1u
#define ZR_REWARD_PLUGIN_ENTRY "zr_reward_plugin_entry"

typedef struct zr_reward_sample {
  const char* prompt;
  size_t prompt_len;
  const char* completion;
  size_t completion_len;
  const char* gold;
  size_t gold_len;
  const char* task;
  size_t task_len;
  const char* metadata_json; /* a JSON object, "{}" when none */
  size_t metadata_json_len;
} zr_reward_sample;

typedef struct zr_reward_plugin_v1 {
  uint32_t abi_version; /* ZR_REWARD_PLUGIN_ABI_VERSION */
  const char* name;     /* for messages */
  uint32_t thread_safe; /* 1: score() may be called concurrently */
  void* (*init)(const char* options_json, char* err, size_t err_cap);
  int (*score)(void* state, const zr_reward_sample* sample, double* value, char* err,
               size_t err_cap);
  void (*destroy)(void* state);
} zr_reward_plugin_v1;

typedef const zr_reward_plugin_v1* (*zr_reward_plugin_entry_fn)(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* ZERORL_REWARDS_PLUGIN_ABI_H_ */
