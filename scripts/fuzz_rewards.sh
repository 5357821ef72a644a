#!/usr/bin/env bash
# Fuzz the math answer extraction + grading with libFuzzer (clang).
# Not part of the default build.
#
#   scripts/fuzz_rewards.sh [SECONDS] [OUT_DIR]
#
# Builds build-fuzz/math_grade_fuzzer from rewards/math/*.cpp with
# -fsanitize=fuzzer,address,undefined, seeds a corpus from the peer suites and
# hostile inputs, runs for SECONDS (default 600) and prints executions,
# crashes and the slowest input (libFuzzer's -report_slow_units).  Extra
# libFuzzer flags go in $FUZZ_FLAGS (e.g. FUZZ_FLAGS=-detect_leaks=0).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "${1:-}" = "--tsan" ]; then
  # scripts/fuzz_rewards.sh --tsan: ThreadSanitizer run of the pipeline pool +
  # grader + GiNaC lock (tests/rewards/fuzz/tsan_pipeline_driver.cpp).
  out=$here/build-fuzz
  mkdir -p "$out"
  ${CXX_FUZZ:-clang++} -std=c++17 -O1 -g -fsanitize=thread -I"$here" $(pkg-config --cflags ginac) \
    "$here/tests/rewards/fuzz/tsan_pipeline_driver.cpp" "$here"/rewards/*.cpp "$here"/rewards/math/*.cpp \
    "$here/core/config.cpp" "$here/core/error.cpp" "$here/core/log.cpp" -o "$out/tsan_pipeline_driver" \
    $(pkg-config --libs ginac) -lgmpxx -lgmp -lyaml-cpp -ldl -lpthread
  TSAN_OPTIONS=halt_on_error=1 exec "$out/tsan_pipeline_driver"
fi
secs=${1:-600}
out=${2:-$here/build-fuzz}
mkdir -p "$out/corpus" "$out/artifacts"
CXX=${CXX_FUZZ:-clang++}
if [ ! -x "$out/math_grade_fuzzer" ] || [ -n "$(find "$here/rewards/math" "$here/tests/rewards/fuzz" -newer "$out/math_grade_fuzzer" -name '*.[ch]*' 2>/dev/null)" ]; then
  echo "building $out/math_grade_fuzzer"
  $CXX -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$here" $(pkg-config --cflags ginac) \
    "$here"/rewards/math/*.cpp "$here/tests/rewards/fuzz/math_grade_fuzzer.cpp" \
    -o "$out/math_grade_fuzzer" $(pkg-config --libs ginac) -lgmpxx -lgmp
fi
# Seeds: peer-suite (gold, pred) pairs and inputs that must stay bounded.
python3 - "$here" "$out/corpus" <<'PY'
import json, os, sys, glob, hashlib
here, corpus = sys.argv[1], sys.argv[2]
def put(b):
    open(os.path.join(corpus, hashlib.sha1(b).hexdigest()), 'wb').write(b)
for f in glob.glob(os.path.join(here, 'tests', 'rewards', 'peer_suites', '*.jsonl')):
    for line in open(f):
        d = json.loads(line)
        put((d['gold'] + '\0' + d['pred']).encode()[:8000])
for s in ['10^{10^{10^{10}}}', '{' * 500 + '1' + '}' * 500, '\\frac{1}{' * 300, '(x+1)^{1000}',
          '\\sqrt[100000]{2}', '99999999999!', '\\pm' * 50 + '1', '\\begin{pmatrix}' + '1&' * 500]:
    put(('1\0\\boxed{' + s + '}').encode())
PY
# CLN keeps one 26-byte cache allocation alive until exit; LeakSanitizer would
# report it at the end of every run.  Everything else leaking is a finding.
echo "leak:libcln.so" > "$out/lsan.supp"
export LSAN_OPTIONS="suppressions=$out/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
log="$out/fuzz.log"
set +e
"$out/math_grade_fuzzer" "$out/corpus" -max_total_time="$secs" -max_len=8192 -timeout=10 \
  -rss_limit_mb=2048 -report_slow_units=1 -artifact_prefix="$out/artifacts/" \
  -print_final_stats=1 ${FUZZ_FLAGS:-} 2>&1 | tee "$log" | grep -E "^#[0-9]+.*(pulse|DONE|NEW)" | tail -n 3
rc=${PIPESTATUS[0]}
set -e
echo "---- summary ($log)"
grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Slowest unit" "$log" | tail -n 4 || true
slow=$(grep -E "Slowest unit" "$log" | tail -n 1 | sed -E 's/.*Slowest unit: ([0-9]+) s.*/\1/')
echo "crashes: $(ls "$out/artifacts" | grep -cE '^(crash|leak|timeout|oom)-' || true)  (exit code $rc)"
ls -S "$out/artifacts" 2>/dev/null | grep '^slow-unit' | head -n 1 | sed "s|^|slowest input file: $out/artifacts/|" || true
exit $rc
