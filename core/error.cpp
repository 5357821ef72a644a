#include "core/error.h"

namespace zerorl::detail {

void throw_call_failure(const char* lib, const char* call, const std::string& why, const char* file,
                        int line) {
  throw Error(str_cat(lib, " call failed: ", call, ": ", why, " (", file, ":", line, ")"));
}

}  // namespace zerorl::detail
