/* Example zerorl reward plug-in (C ABI v1, see rewards/plugin_abi.h).
 *
 * "answer_length": rewards short final answers.  The answer is the text
 * inside the last <answer>...</answer> block, trimmed.
 *   length <= max_chars  -> 1.0
 *   length >  max_chars  -> max_chars / length
 *   no <answer> block    -> error "no <answer> block" (the sample scores 0)
 * Option: {"max_chars": N} (default 100, must be > 0).
 *
 * Build: cc -shared -fPIC -I<repo> answer_length_plugin.c -o libanswer_length.so
 * (CMake target zr_example_reward_plugin builds it into build/plugins/).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewards/plugin_abi.h"

typedef struct {
  long max_chars;
} state_t;

static void set_err(char* err, size_t cap, const char* msg) {
  if (cap == 0) return;
  snprintf(err, cap, "%s", msg);
}

/* Options are a small JSON object; a full parser is not needed for one key. */
static void* answer_length_init(const char* options_json, char* err, size_t err_cap) {
  state_t* s = (state_t*)malloc(sizeof(state_t));
  if (!s) {
    set_err(err, err_cap, "out of memory");
    return NULL;
  }
  s->max_chars = 100;
  const char* k = options_json ? strstr(options_json, "\"max_chars\"") : NULL;
  if (k) {
    k = strchr(k, ':');
    char* end = NULL;
    long v = k ? strtol(k + 1, &end, 10) : 0;
    if (!k || end == k + 1 || v <= 0) {
      free(s);
      set_err(err, err_cap, "max_chars must be a positive integer");
      return NULL;
    }
    s->max_chars = v;
  }
  return s;
}

/* Last occurrence of needle in [hay, hay+len). */
static const char* find_last(const char* hay, size_t len, const char* needle) {
  size_t n = strlen(needle);
  if (len < n) return NULL;
  for (size_t i = len - n + 1; i-- > 0;)
    if (memcmp(hay + i, needle, n) == 0) return hay + i;
  return NULL;
}

static int answer_length_score(void* state, const zr_reward_sample* sample, double* value,
                               char* err, size_t err_cap) {
  const state_t* s = (const state_t*)state;
  const char* text = sample->completion;
  size_t len = sample->completion_len;
  const char* open = find_last(text, len, "<answer>");
  if (!open) {
    set_err(err, err_cap, "no <answer> block");
    return 1;
  }
  const char* begin = open + 8;
  const char* close = NULL;
  for (const char* p = begin; p + 9 <= text + len; ++p)
    if (memcmp(p, "</answer>", 9) == 0) {
      close = p;
      break;
    }
  if (!close) {
    set_err(err, err_cap, "unclosed <answer> block");
    return 1;
  }
  while (begin < close && isspace((unsigned char)*begin)) ++begin;
  while (close > begin && isspace((unsigned char)close[-1])) --close;
  long n = (long)(close - begin);
  *value = n <= s->max_chars ? 1.0 : (double)s->max_chars / (double)n;
  return 0;
}

static void answer_length_destroy(void* state) { free(state); }

static const zr_reward_plugin_v1 kTable = {
    ZR_REWARD_PLUGIN_ABI_VERSION, "answer_length",     1u,
    answer_length_init,           answer_length_score, answer_length_destroy};

__attribute__((visibility("default"))) const zr_reward_plugin_v1* zr_reward_plugin_entry(
    uint32_t host_abi_version) {
  return host_abi_version == ZR_REWARD_PLUGIN_ABI_VERSION ? &kTable : NULL;
}
