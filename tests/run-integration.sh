#!/bin/sh
# Runs every test (the C unit tests are run from tests/integration/test_unit.py) with pytest,
# whose last line is the standard summary.
cd "$(dirname "$0")/.." || exit 1
exec /usr/bin/python3 -m pytest -p no:cacheprovider -rs "$@" tests/integration
