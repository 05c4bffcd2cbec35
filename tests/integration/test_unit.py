"""Runs the C unit tests (parsers: configuration, paths, replies, Telnet, listings, messages;
the front's seccomp filter, call by call)."""
import glob
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINS = sorted(glob.glob(os.path.join(ROOT, "build", "tests", "*_test")))


def test_unit_binaries_exist():
    assert BINS, "make unit did not build tests/unit/*_test.c"


@pytest.mark.parametrize("binary", BINS, ids=[os.path.basename(b) for b in BINS])
def test_unit(binary):
    r = subprocess.run([binary], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
