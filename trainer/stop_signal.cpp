#include "trainer/stop_signal.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>

namespace zerorl {

namespace {

std::atomic<int> g_first_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free int");

constexpr int kSignals[] = {SIGTERM, SIGINT, SIGUSR1};

void write_stderr(const char* s) {
  ssize_t r = ::write(STDERR_FILENO, s, std::strlen(s));
  (void)r;
}

void on_signal(int sig) {
  int expected = 0;
  if (g_first_signal.compare_exchange_strong(expected, sig)) return;
  // The second signal: the user (or the scheduler) does not want to wait.
  write_stderr("zerorl: second signal: exiting now without a checkpoint\n");
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // a signal does not turn a blocking read into an error
  for (int s : kSignals) sigaction(s, &sa, nullptr);
}

int stop_signal() { return g_first_signal.load(); }

void clear_stop_request() { g_first_signal.store(0); }

const char* stop_signal_name(int sig) {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGUSR1:
      return "SIGUSR1";
    default:
      return "a signal";
  }
}

}  // namespace zerorl
