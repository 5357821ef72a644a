// Graceful stop on preemption and Ctrl-C.
//
// install_stop_handlers() makes SIGTERM, SIGINT and SIGUSR1 request a stop:
// the first one only records itself (stop_signal() then returns its number),
// and the training loop, which polls it at the end of every step, finishes
// that step on every rank, writes a checkpoint and returns (the command then
// exits with kStoppedExitCode and one line).  A second signal of any of the
// three ends the process at once, with the default action of that signal
// (status 128 + signal), after one line on stderr.
//
// Why SIGUSR1 too: Open MPI's mpirun forwards SIGUSR1 to every rank as is,
// whereas on SIGTERM/SIGINT it sends the ranks SIGTERM and, after
// odls_base_sigkill_timeout seconds (default 1), SIGKILL; launch_mpirun.sh
// raises that timeout.  Slurm: scripts/slurm.sbatch asks for SIGUSR1 before
// the time limit.
//
// The handlers only store to lock-free atomics and, for the second signal,
// call write/signal/raise (async-signal-safe).  Installed by the `train`
// command, not by the library: an embedding program keeps its own handlers.
#pragma once

namespace zerorl {

// The exit status of a run that stopped on a signal after writing its
// checkpoint (EX_TEMPFAIL: "try again later", i.e. --resume auto).
constexpr int kStoppedExitCode = 75;

// Idempotent.
void install_stop_handlers();
// 0 while no stop was requested, else the first signal's number.
int stop_signal();
// Forgets a request (tests).
void clear_stop_request();
// "SIGTERM", "SIGINT", "SIGUSR1", or "a signal".
const char* stop_signal_name(int sig);

}  // namespace zerorl
