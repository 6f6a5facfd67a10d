#!/usr/bin/env bash
# make fuzz: every libFuzzer harness for a fixed time each. New inputs go to the build
# tree's corpus (seeded from tests/fuzz/corpus); a crash stops the run with its file.
set -euo pipefail
build=${1:?build dir}
seconds=${2:-60}
src=$(cd "$(dirname "$0")" && pwd)
status=0
for bin in "$build"/tests/fuzz/fuzz_*; do
  [[ -x $bin ]] || continue
  name=${bin##*/fuzz_}
  mkdir -p "$build/tests/fuzz/corpus/$name"
  echo "== $name: ${seconds}s"
  if ! "$bin" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/tests/fuzz/fuzz_$name-" "$build/tests/fuzz/corpus/$name" "$src/corpus/$name" \
      2> >(grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::new_units_added|==[0-9]+==ERROR|SUMMARY|.*runtime error)" >&2); then
    echo "!! $name found a crash: $(ls -t "$build"/tests/fuzz/fuzz_"$name"-* 2>/dev/null | head -1)"
    status=1
  fi
done
exit $status
