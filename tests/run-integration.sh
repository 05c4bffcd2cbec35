#!/bin/sh
# Runs every test (the C unit tests are run from tests/integration/test_unit.py) with pytest,
# whose last line is the standard summary. Extra arguments go to pytest; naming test files or
# directories runs only those.
cd "$(dirname "$0")/.." || exit 1
paths=tests/integration
for a in "$@"; do
    case "$a" in tests/*) paths= ;; esac
done
exec /usr/bin/python3 -m pytest -p no:cacheprovider -rs -W ignore::DeprecationWarning "$@" $paths
