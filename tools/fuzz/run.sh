#!/usr/bin/env bash
# Coverage-guided fuzzing of the frame scanner and the relay's state machines: builds the harness
# (src/ReaperProxy.Fuzz), instruments ReaperProxy.dll with SharpFuzz, runs afl-fuzz on the committed
# seed corpus for a bounded time, prints what it did, and exits non-zero on any crash or hang.
#
#   tools/fuzz/run.sh [--minutes N | --seconds N] [--target scanner|relay] [--out DIR] [--from BUILD]
#
# Defaults: 60 seconds, target scanner, a fresh directory under ${TMPDIR:-/tmp}. --from takes an existing
# build of src/ReaperProxy.Fuzz (its bin/<Configuration>/net10.0 folder) instead of publishing one. Findings
# (crashes, hangs) stay in DIR/default/{crashes,hangs}; each is replayed, uninstrumented, with
#   dotnet DIR/plain/ReaperProxy.Fuzz.dll replay TARGET FILE
# Exit codes: 0 clean, 1 crashes or hangs found, 2 usage or setup error.
# The whole script is one function, read before it runs: editing the file during a long run is safe.
main() {
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

seconds=60
target=scanner
out=""
from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) seconds=$(( ${2:?--minutes needs a number} * 60 )); shift 2 ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --target) target=${2:?--target needs scanner or relay}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --from) from=${2:?--from needs a build folder}; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$target" in scanner|relay) ;; *) echo "run.sh: --target must be scanner or relay, not '$target'" >&2; exit 2 ;; esac
case "$seconds" in ''|*[!0-9]*|0) echo "run.sh: the duration must be a positive whole number" >&2; exit 2 ;; esac
if ! command -v afl-fuzz >/dev/null 2>&1; then
  echo "run.sh: afl-fuzz not found (Debian: apt-get install afl++)" >&2
  exit 2
fi

out=${out:-$(mktemp -d "${TMPDIR:-/tmp}/reaper-fuzz-$target.XXXXXX")}
mkdir -p "$out"
plain="$out/plain"  # as built: replays findings (instrumented code needs afl-fuzz's shared memory)
bin="$out/bin"      # instrumented: what afl-fuzz runs
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

started=$(date +%s)
rm -rf "$plain" "$bin"
if [ -n "$from" ]; then
  [ -f "$from/ReaperProxy.Fuzz.dll" ] || { echo "run.sh: no ReaperProxy.Fuzz.dll in --from $from" >&2; exit 2; }
  mkdir -p "$plain" && cp -r "$from/." "$plain/"
else
  # Its own obj/bin (artifacts), so a run does not race a build of the solution (or another run) in the tree.
  dotnet publish "$root/src/ReaperProxy.Fuzz/ReaperProxy.Fuzz.csproj" -c Release -o "$plain" \
    --artifacts-path "$out/artifacts" --nologo -v quiet >"$out/build.log" 2>&1 \
    || { cat "$out/build.log" >&2; echo "run.sh: build failed" >&2; exit 2; }
fi
mkdir -p "$bin" && cp -r "$plain/." "$bin/"
(cd "$root" && dotnet tool restore >/dev/null) || { echo "run.sh: dotnet tool restore failed (SharpFuzz.CommandLine, dotnet-tools.json)" >&2; exit 2; }
# Only the product is instrumented: coverage is the proxy's, not the harness's or the framework's.
(cd "$root" && dotnet sharpfuzz "$bin/ReaperProxy.dll") >"$out/instrument.log" 2>&1 \
  || { cat "$out/instrument.log" >&2; echo "run.sh: sharpfuzz failed" >&2; exit 2; }
echo "run.sh: harness ready (built or copied, instrumented) in $(( $(date +%s) - started )) s"

# The seeds and every earlier finding first, in-process: afl-fuzz refuses a corpus whose seeds crash, and
# a regression there is reported as what it is.
if ! dotnet "$plain/ReaperProxy.Fuzz.dll" replay "$target" "$root/tools/fuzz/corpus/$target" \
    $( [ -d "$root/tools/fuzz/regressions/$target" ] && echo "$root/tools/fuzz/regressions/$target" ) >"$out/replay.log" 2>&1; then
  grep -E '^FAIL|inputs' "$out/replay.log" | head -20
  echo "crashes:      $(grep -c '^FAIL' "$out/replay.log") (in the committed corpus, before fuzzing)"
  exit 1
fi
echo "run.sh: $(tail -1 "$out/replay.log") (corpus and regressions replayed)"

# This machine: no CPU pinning (cores are shared), no cpufreq or core_pattern demands; the dotnet host
# is not instrumented itself (SharpFuzz reports coverage from the instrumented assembly).
export AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_BIN_CHECK=1
export AFL_NO_UI=1 AFL_FORKSRV_INIT_TMOUT=60000 AFL_AUTORESUME=1
echo "run.sh: afl-fuzz --target $target for $seconds s, output in $out"
set +e
timeout --kill-after=30 $(( seconds + 120 )) afl-fuzz -i "$root/tools/fuzz/corpus/$target" -o "$out" -V "$seconds" -t 5000 -m none \
  -- dotnet "$bin/ReaperProxy.Fuzz.dll" "$target" >"$out/afl.log" 2>&1
status=$?
set -e

stats="$out/default/fuzzer_stats"
if [ ! -f "$stats" ]; then
  tail -40 "$out/afl.log" >&2
  echo "run.sh: afl-fuzz did not start (exit $status)" >&2
  exit 2
fi
stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
crashes=$(stat saved_crashes); crashes=${crashes:-$(stat unique_crashes)}
hangs=$(stat saved_hangs); hangs=${hangs:-$(stat unique_hangs)}
echo "target:       $target"
echo "run time:     $(( $(stat last_update) - $(stat start_time) )) s"
echo "executions:   $(stat execs_done) ($(stat execs_per_sec) exec/s)"
echo "paths:        $(stat corpus_count) in the queue, $(stat corpus_found) found by fuzzing"
echo "edges:        $(stat edges_found) of $(stat total_edges) (map density $(stat bitmap_cvg))"
echo "stability:    $(stat stability)"
echo "crashes:      $crashes"
echo "hangs:        $hangs"
if [ "${crashes:-0}" != 0 ] || [ "${hangs:-0}" != 0 ]; then
  for file in "$out"/default/crashes/id:* "$out"/default/hangs/id:*; do
    [ -f "$file" ] || continue
    echo "finding: $file"
    timeout 60 dotnet "$plain/ReaperProxy.Fuzz.dll" replay "$target" "$file" | sed 's/^/  /' || true
  done
  exit 1
fi
if [ "$status" -ne 0 ]; then
  tail -20 "$out/afl.log" >&2
  echo "run.sh: afl-fuzz exited with $status" >&2
  exit 2
fi
}

main "$@"
