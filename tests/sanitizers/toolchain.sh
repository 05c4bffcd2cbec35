#!/bin/sh
# make check-asan: a compiler ($ASAN_CC, default clang) that links -fsanitize=address,undefined.
# As root, clang and its runtime (libclang-rt-NN-dev) are installed when missing, through
# tests/lib/install-deps.sh (only what is missing). Exit 0 ready, 1 not available.
#
# clang, not gcc: gcc links UBSan as a second runtime (libubsan) with its own copy of the report
# file, so UBSan reports ignore __sanitizer_set_report_fd() and cannot be taken out of the
# sandboxed processes (tests/sanitizers/sandbox_hooks.c). clang links one runtime for both.
set -u
ASAN_CC=${ASAN_CC:-clang}
OUT=build/asan
mkdir -p "$OUT"

links() {
    printf 'int main(void) { return 0; }\n' > "$OUT/probe.c" &&
        "$ASAN_CC" -fsanitize=address,undefined -o "$OUT/probe" "$OUT/probe.c" \
            > "$OUT/probe.log" 2>&1
}

links && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "check-asan: $ASAN_CC cannot link -fsanitize=address,undefined (install clang and" \
        "libclang-rt-NN-dev, or run as root)" >&2
    exit 1
fi
sh tests/lib/install-clang.sh "$ASAN_CC"
if ! links; then
    echo "check-asan: $ASAN_CC still cannot link -fsanitize=address,undefined:" >&2
    cat "$OUT/probe.log" >&2
    exit 1
fi
