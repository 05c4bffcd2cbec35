import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from ftpsd_fixture import Env, Server  # noqa: E402

NEEDS_ROOT = ("env", "server", "make_server")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: the server chroots, changes uid and runs PAM")
    for item in items:
        if any(f in item.fixturenames for f in NEEDS_ROOT):
            item.add_marker(skip)


class Syslog:
    """rsyslogd on /dev/log writing to a file, started by the tests (no syslog runs here)."""

    def __init__(self, env):
        self.path = env.path("syslog.log")
        self.proc = None
        self.available = False
        if os.path.exists("/dev/log"):
            self.reason = "/dev/log belongs to a running syslog daemon; log lines cannot be read"
            return
        conf = env.path("rsyslog.conf")
        with open(conf, "w") as fh:
            fh.write('global(workDirectory="%s")\n' % env.dir)
            fh.write('module(load="imuxsock" SysSock.Name="/dev/log" SysSock.RateLimit.Interval="0")\n')
            fh.write('*.* action(type="omfile" file="%s" template="RSYSLOG_FileFormat")\n' % self.path)
        self.proc = subprocess.Popen(["rsyslogd", "-n", "-f", conf, "-i", env.path("rsyslog.pid")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists("/dev/log"):
                self.available = True
                break
            time.sleep(0.05)
        self.reason = "rsyslogd did not start"

    def text(self, wait_for=None, timeout=5):
        deadline = time.time() + timeout
        while True:
            try:
                with open(self.path, errors="replace") as fh:
                    t = fh.read()
            except FileNotFoundError:
                t = ""
            if wait_for is None or wait_for in t or time.time() > deadline:
                return t
            time.sleep(0.1)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            try:
                os.unlink("/dev/log")
            except OSError:
                pass


@pytest.fixture(scope="session")
def env():
    e = Env()
    yield e
    e.cleanup()


@pytest.fixture(scope="session", autouse=True)
def syslog(request):
    if os.geteuid() != 0:
        yield None
        return
    e = request.getfixturevalue("env")
    s = Syslog(e)
    yield s
    s.stop()


@pytest.fixture
def log(syslog):
    """The syslog fixture, for tests that read the server's log lines."""
    if syslog is None:
        pytest.skip("needs root (the syslog fixture is not started otherwise)")
    if not syslog.available:
        pytest.skip(syslog.reason)
    return syslog


@pytest.fixture(scope="module")
def server(env):
    s = Server(env, name="default")
    yield s
    s.stop()


@pytest.fixture
def make_server(env):
    started = []

    def make(**conf):
        s = Server(env, **conf)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
