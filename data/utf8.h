// UTF-8 helpers and GPT-2's reversible byte <-> unicode map.
//
// Byte-level BPE (GPT-2, Qwen, Llama 3, DeepSeek) never sees raw bytes: every
// byte 0..255 is first mapped to a printable code point (bytes that are
// printable Latin-1 map to themselves, the others to U+0100 onwards), so that
// vocabulary entries are ordinary strings.  These functions are pure and
// thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace zerorl::data {

// Offset of the first byte that does not start a valid UTF-8 sequence
// (overlong forms, surrogates and code points > U+10FFFF are invalid), or
// std::string_view::npos when the whole text is valid.
size_t utf8_invalid_offset(std::string_view text);

// Decode the code point starting at text[i] and advance i.  The text must be
// valid UTF-8 (check with utf8_invalid_offset first).
uint32_t utf8_next(std::string_view text, size_t& i);

// Append the UTF-8 encoding of code point cp.
void utf8_append(std::string& out, uint32_t cp);

// GPT-2 bytes_to_unicode(): the code point each byte is written as.
const std::array<uint32_t, 256>& byte_to_codepoint();
// The same map, each entry already UTF-8 encoded.
const std::array<std::string, 256>& byte_to_utf8();
// Inverse of byte_to_codepoint(); -1 for a code point that is not an image.
int codepoint_to_byte(uint32_t cp);

}  // namespace zerorl::data
