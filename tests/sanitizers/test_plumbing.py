"""make check-asan, first step: a report from each kind of ftpsd process, confined as in
production (chroot, seccomp on, workers holding two descriptors), reaches the sanitizer logs.

build/asan/ftpsd-selftest is build/asan/ftpsd plus tests/sanitizers/selftest_faults.c, which
makes one process misbehave after its filter is loaded (FTPSD_SELFTEST=ROLE:KIND). Without this,
a change that lost the reports (a worker exec'd, a new way to spawn) would leave make check-asan
passing on empty logs. Not part of make check (tests/integration only)."""
import io
import os
import re
import shutil
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

from ftpsd_fixture import Env, Server  # noqa: E402

SELFTEST = os.path.join(ROOT, "build", "asan", "ftpsd-selftest")
LOGS = os.path.join(ROOT, "build", "asan", "selftest-logs")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the server chroots and runs PAM"),
    pytest.mark.skipif(not os.path.exists(SELFTEST), reason="make build/asan/ftpsd-selftest"),
]

# Regular expressions, searched in the logs of the session.
ASAN = r"ERROR: AddressSanitizer: heap-buffer-overflow"
UBSAN = r"selftest_faults\.c:\d+:\d+: runtime error: "
LSAN = r"ERROR: LeakSanitizer: detected memory leaks"
CAPTURED = r"\(data worker; report captured by its front\)"

CASES = [
    ("monitor", "heap", [ASAN]),
    ("monitor", "ubsan", [UBSAN]),
    ("monitor", "leak", [LSAN, r"77 byte\(s\)"]),
    ("front", "heap", [ASAN]),
    ("front", "ubsan", [UBSAN]),
    ("user", "heap", [ASAN]),
    ("user", "ubsan", [UBSAN]),
    ("worker", "heap", [ASAN, CAPTURED]),
    ("worker", "ubsan", [UBSAN, CAPTURED]),
]


@pytest.fixture(scope="module")
def env():
    e = Env()
    yield e
    e.cleanup()


def session(s):
    """Login, one upload and one download: every process has a turn. Failures are expected
    (the faulting process dies)."""
    try:
        f = s.ftps_reuse("alice", timeout=20)
        f.storbinary("STOR plumbing.bin", io.BytesIO(b"p" * 100000))
        f.retrbinary("RETR plumbing.bin", lambda b: None)
        f.quit()
    except Exception:  # noqa: BLE001
        pass


def logs_text(d):
    text = ""
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), errors="replace") as fh:
            text += fh.read()
    return text


@pytest.mark.parametrize("role,kind,expect", CASES, ids=[f"{r}-{k}" for r, k, _ in CASES])
def test_report_reaches_the_log(env, monkeypatch, role, kind, expect):
    logdir = os.path.join(LOGS, f"{role}-{kind}")
    shutil.rmtree(logdir, ignore_errors=True)
    os.makedirs(logdir)
    os.chmod(logdir, 0o1777)
    common = f"log_path={logdir}/asan:symbolize=0:color=never"
    monkeypatch.setenv("ASAN_OPTIONS", common + ":detect_leaks=1:halt_on_error=1")
    monkeypatch.setenv("UBSAN_OPTIONS", common + ":halt_on_error=1:print_stacktrace=1")
    monkeypatch.setenv("LSAN_OPTIONS", common)
    monkeypatch.setenv("FTPSD_SELFTEST", f"{role}:{kind}")
    names = set(os.environ.get("FTPSD_TEST_ENV", "").split())
    names |= {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "FTPSD_SELFTEST",
              "UID_WRAPPER_DISABLE_DEEPBIND", "NSS_WRAPPER_DISABLE_DEEPBIND"}
    monkeypatch.setenv("UID_WRAPPER_DISABLE_DEEPBIND", "1")
    monkeypatch.setenv("NSS_WRAPPER_DISABLE_DEEPBIND", "1")
    monkeypatch.setenv("FTPSD_TEST_ENV", " ".join(sorted(names)))
    s = Server(env, name=f"plumbing-{role}-{kind}", binary=SELFTEST)
    try:
        session(s)
        deadline = time.time() + 30
        while time.time() < deadline and not all(re.search(e, logs_text(logdir)) for e in expect):
            time.sleep(0.2)
    finally:
        s.stop()
    text = logs_text(logdir)
    for e in expect:
        assert re.search(e, text), f"{role}:{kind}: no {e!r} in {logdir}:\n{text[-3000:]}"
    if role != "worker":
        assert not re.search(CAPTURED, text)
