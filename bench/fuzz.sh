#!/usr/bin/env bash
# Fuzzing: runs every cargo-fuzz target (fuzz/) for a bounded time, one after the other.
#
#   bash bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     # from anywhere; default 60 s, all
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Each target runs as
# one libFuzzer process (no forked jobs: the machine is shared) on its committed corpus
# (fuzz/corpus/<target>/, seeded from real inputs by bench/fuzz_seed.py), which keeps what
# adds coverage: commit it. A finding stops that target and lands in fuzz/artifacts/<target>/;
# reproduce it with `cargo +nightly fuzz run TARGET FILE`, fix it, and add the input as a unit
# test. The stable test suite replays the corpus (crates/polarbackup/tests/fuzz_corpus.rs).
# Prints executions and findings per target; exits 1 if any target found something.
set -euo pipefail

secs="${1:-60}"
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.."

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build >/dev/null

found=0
rows=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="fuzz/artifacts/$t/last-run.log"
    before=$(find "fuzz/artifacts/$t" -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' | wc -l)
    # -timeout: an input that takes 10 s is a hang (every decoder must end on finite input).
    if cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=FOUND
        found=1
    fi
    after=$(find "fuzz/artifacts/$t" -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' | wc -l)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    rows+=("$(printf '%-18s %12s %8s %8s %s' "$t" "${execs:-?}" "$corpus" "$((after - before))" "$result")")
    echo "${rows[-1]}" >&2
done

printf '%-18s %12s %8s %8s %s\n' target executions corpus findings result
printf '%s\n' "${rows[@]}"
exit "$found"
