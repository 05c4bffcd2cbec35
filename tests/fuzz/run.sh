#!/bin/sh
# The fuzzing side of the Makefile (make fuzz, make fuzz-smoke, make fuzz-regress).
#
#   run.sh toolchain          clang that can link -fsanitize=fuzzer: installed when missing (as
#                             root, through tests/lib/install-deps.sh, only what is missing).
#                             Exit 0 ready, 2 missing and not root, 1 error.
#   run.sh run SECONDS keep|fresh TARGET...
#                             runs each build/fuzz/TARGET for SECONDS with -max_len=4096 on a copy
#                             of tests/fuzz/corpus/TARGET (and with tests/fuzz/TARGET.dict if there
#                             is one): "keep" grows build/fuzz/corpus/TARGET across runs, "fresh"
#                             starts from the seeds each time. Prints the
#                             executions per target; exits 1 if any target found a crash, leak,
#                             undefined behaviour, broken invariant or timeout (the input is in
#                             build/fuzz/artifacts/TARGET/, the report in build/fuzz/logs/).
#   run.sh regress TARGET...  runs the saved reproducers of tests/fuzz/crashes/TARGET/ once each;
#                             exits 1 if any of them still fails.
#
# FUZZ_CC (default clang) is the compiler; FUZZ_ARGS adds libFuzzer options.
set -u
FUZZ_CC=${FUZZ_CC:-clang}
OUT=build/fuzz

links_fuzzer() {
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
        > "$OUT/probe.c" &&
        "$FUZZ_CC" -fsanitize=fuzzer,address,undefined -o "$OUT/probe" "$OUT/probe.c" \
            > "$OUT/probe.log" 2>&1
}

toolchain() {
    mkdir -p "$OUT"
    links_fuzzer && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "fuzz: $FUZZ_CC cannot build libFuzzer targets (needs clang and libclang-rt-NN-dev;" \
            "run as root to install them)" >&2
        return 2
    fi
    sh tests/lib/install-clang.sh "$FUZZ_CC"
    if ! links_fuzzer; then
        echo "fuzz: $FUZZ_CC still cannot link -fsanitize=fuzzer:" >&2
        cat "$OUT/probe.log" >&2
        return 1
    fi
}

run() {
    secs=$1 mode=$2
    shift 2
    fail=0 total=0
    mkdir -p "$OUT/logs"
    printf '%-14s %12s  %s\n' target executions "libFuzzer's last line"
    for t in "$@"; do
        if [ "$mode" = fresh ]; then
            corpus=$OUT/smoke-corpus/$t
            rm -rf "$corpus"
        else
            corpus=$OUT/corpus/$t
        fi
        mkdir -p "$corpus" "$OUT/artifacts/$t"
        cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2> /dev/null
        log=$OUT/logs/$t.log
        dict=
        [ -f tests/fuzz/"$t".dict ] && dict=-dict=tests/fuzz/$t.dict
        # shellcheck disable=SC2086
        "$OUT/$t" -max_total_time="$secs" -max_len=4096 -timeout=25 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t/" $dict ${FUZZ_ARGS:-} \
            "$corpus" > "$log" 2>&1
        rc=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
        printf '%-14s %12s  %s\n' "$t" "${execs:-?}" "${done_line:-(no DONE line)}"
        total=$((total + ${execs:-0}))
        if [ "$rc" != 0 ]; then
            fail=1
            echo "FAIL: $t exited with $rc; report in $log:" >&2
            grep -E -A 30 'ERROR: |runtime error|invariant violated|deadly signal|fuzz target exited' \
                "$log" | head -n 60 >&2
            grep -E '^(artifact_prefix|Test unit written to)' "$log" >&2
        fi
    done
    printf '%-14s %12s\n' total "$total"
    return $fail
}

regress() {
    fail=0
    for t in "$@"; do
        dir=tests/fuzz/crashes/$t
        [ -d "$dir" ] || continue
        for f in "$dir"/*; do
            [ -f "$f" ] || continue
            case $f in *.txt | *.md) continue ;; esac
            log="$OUT/logs/regress-$t-$(basename "$f").log"
            if "$OUT/$t" -runs=1 -timeout=25 "$f" > "$log" 2>&1; then
                echo "fixed:  $f"
            else
                echo "FAILS:  $f (report in $log)" >&2
                fail=1
            fi
        done
    done
    return $fail
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
toolchain) toolchain ;;
run) mkdir -p "$OUT/logs" && run "$@" ;;
regress) mkdir -p "$OUT/logs" && regress "$@" ;;
*)
    echo "usage: $0 toolchain | run SECONDS keep|fresh TARGET... | regress TARGET..." >&2
    exit 1
    ;;
esac
