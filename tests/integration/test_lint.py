"""The code is formatted with the repo's .clang-format and cppcheck finds nothing."""
import glob
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = sorted(p for d in ("src", "tests/unit", "tests/fuzz", "tests/sanitizers", "tests/lib",
                            "bench")
                 for p in glob.glob(os.path.join(ROOT, d, "*.[ch]")))


def test_clang_format():
    if not shutil.which("clang-format"):
        pytest.skip("clang-format is not installed")
    r = subprocess.run(["clang-format", "--dry-run", "--Werror"] + SOURCES, cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[:3000]


def test_cppcheck():
    if not shutil.which("cppcheck"):
        pytest.skip("cppcheck is not installed")
    r = subprocess.run(["cppcheck", "--enable=warning,performance,portability", "--quiet",
                        "--error-exitcode=1", "-D_GNU_SOURCE", "-Isrc", "src/"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr[:3000]
