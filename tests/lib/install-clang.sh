#!/bin/sh
# Installs clang ($1, default clang) and the sanitizer and libFuzzer runtime of its major
# version (libclang-rt-NN-dev) through install-deps.sh, only what is missing. Used by
# make check-asan (tests/sanitizers/toolchain.sh) and the fuzz targets (tests/fuzz/run.sh),
# as root.
cc=${1:-clang}
command -v "$cc" > /dev/null 2>&1 || sh tests/lib/install-deps.sh clang
major=$("$cc" -dumpversion 2> /dev/null | cut -d. -f1)
[ -n "$major" ] && sh tests/lib/install-deps.sh "libclang-rt-$major-dev"
exit 0
