// zerorl's one exception type and the checks that throw it.
//
// Contract:
//   * User, config and I/O problems throw zerorl::Error with a message a user
//     can act on (which file, which key, which line, which value).
//   * ZR_CHECK(cond, parts...) throws Error("<parts...>") when cond is false;
//     the parts are streamed, so values can be named: ZR_CHECK(n > 0, "n=", n).
//   * CUDA_CHECK / NCCL_CHECK / MPI_CHECK / H5_CHECK wrap a library call, and on
//     failure throw an Error naming the call, the library's error string and
//     the source position.  They are usable from any thread.
//   * Library code never calls exit() or abort(); main() catches Error, prints
//     it and, under MPI, calls MPI_Abort so that no rank is left hanging.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace zerorl {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void stream_parts(std::ostringstream&) {}
template <typename T, typename... Rest>
void stream_parts(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  stream_parts(os, rest...);
}
template <typename... Parts>
std::string str_cat(const Parts&... parts) {
  std::ostringstream os;
  stream_parts(os, parts...);
  return os.str();
}
[[noreturn]] void throw_call_failure(const char* lib, const char* call, const std::string& why,
                                     const char* file, int line);
}  // namespace detail

// Concatenate anything streamable into a string: str_cat("x=", 3) == "x=3".
using detail::str_cat;

}  // namespace zerorl

#define ZR_CHECK(cond, ...)                                             \
  do {                                                                  \
    if (!(cond)) throw ::zerorl::Error(::zerorl::str_cat(__VA_ARGS__)); \
  } while (0)

#define ZR_THROW(...) throw ::zerorl::Error(::zerorl::str_cat(__VA_ARGS__))
