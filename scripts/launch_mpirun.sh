#!/usr/bin/env bash
# Launch zerorl on many processes (and nodes) with Open MPI.
#   scripts/launch_mpirun.sh NP [--hostfile FILE] -- train recipes/r1zero-hf-moe.yaml key=value ...
# One rank per GPU on GPU nodes (the recipe's comm.backend: auto picks NCCL); on CPU
# machines one rank per core pair, each with one OpenMP thread.
set -euo pipefail
np=${1:?usage: launch_mpirun.sh NP [mpirun options] -- zerorl-args...}
shift
mpi_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do mpi_args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root_flag=()
[ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)
# Stopping: on SIGTERM or SIGINT (Ctrl-C) Open MPI's mpirun sends the ranks
# SIGTERM and SIGKILL one second later, too soon for them to finish a step
# and checkpoint.  So mpirun runs in its own session (the terminal's Ctrl-C
# reaches only this script) and the first SIGTERM/SIGINT here is passed on
# as SIGUSR1, which mpirun forwards to every rank unchanged: each finishes
# its step, checkpoints, and the run exits with status 75.  A second one is
# passed on as SIGTERM: the job ends at once.
setsid mpirun -np "$np" "${root_flag[@]}" --bind-to none \
  -x OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" -x LD_LIBRARY_PATH \
  "${mpi_args[@]}" "$here/build/zerorl" "$@" </dev/null &
pid=$!
signals=0
on_stop() {
  signals=$((signals + 1))
  if [ "$signals" -eq 1 ]; then kill -USR1 "$pid" 2>/dev/null; else kill -TERM "$pid" 2>/dev/null; fi
}
trap on_stop TERM INT
set +e
while :; do
  wait "$pid"
  rc=$?
  # wait returns early (status > 128) when a trapped signal arrives.
  kill -0 "$pid" 2>/dev/null || break
done
exit "$rc"
