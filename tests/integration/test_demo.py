"""`make demo`, the README's first command: it must serve FTPS on 127.0.0.1, and the curl and
lftp commands it prints must work exactly as printed (real account, shipped pam.d/ftpsd)."""
import grp
import os
import pwd
import re
import selectors
import signal
import subprocess
import tempfile
import time
import types

import pytest

from ftpsd_fixture import ROOT, free_port
from test_real_account import WHY_NOT

DEMO_USER = "ftpsdemo"
NOPRIV = "ftpsd-nopriv"

pytestmark = [
    pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""),
    # make check-asan tests its own build; the demo builds and serves the normal one.
    pytest.mark.skipif("FTPSD_TEST_BINARY" in os.environ, reason="the demo serves ./ftpsd"),
]


def exists(user):
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def read_until(proc, pattern, timeout):
    """stdout and stderr of the demo until pattern appears in them (both, as one text)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    sel.register(proc.stderr, selectors.EVENT_READ)
    text = ""
    deadline = time.time() + timeout
    while not re.search(pattern, text):
        left = deadline - time.time()
        if left <= 0 or proc.poll() is not None:
            raise AssertionError(f"make demo did not print {pattern!r}:\n{text}")
        for key, _ in sel.select(left):
            chunk = os.read(key.fileobj.fileno(), 65536).decode(errors="replace")
            text += chunk
    return text


def stop(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    # the sessions' processes are in the same group; the accounts go once they are gone
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)


@pytest.fixture(scope="module")
def demo():
    had = {u: exists(u) for u in (DEMO_USER, NOPRIV)}
    had_pam = os.path.exists("/etc/pam.d/ftpsd")
    had_dir = os.path.exists(os.path.join(ROOT, "demo"))
    port = free_port()
    proc = subprocess.Popen(["make", "-s", "demo"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            env=dict(os.environ, DEMO_PORT=str(port)))
    try:
        # The build is done by make check already; the rest is a certificate and an account.
        text = read_until(proc, r"Listening on 127\.0\.0\.1:%d" % port, 300)
        yield types.SimpleNamespace(port=port, text=text, proc=proc, had=had, had_pam=had_pam,
                                    had_dir=had_dir)
    finally:
        # test_demo_clean has run make demo-clean already, unless it failed
        stop(proc)
        if not had_dir:
            subprocess.run(["make", "-s", "demo-clean"], cwd=ROOT, capture_output=True)
        for user, was in had.items():
            if not was and exists(user):
                subprocess.run(["userdel", "-r", "-f", user], capture_output=True)
        if not had_pam and os.path.exists("/etc/pam.d/ftpsd"):
            os.unlink("/etc/pam.d/ftpsd")


def printed_commands(text, tool):
    """The commands the demo tells the user to try, joined across backslash-newlines."""
    joined = text.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip().startswith(tool + " ")]


def run(cmd):
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60)


def test_demo_prints_where_it_serves(demo):
    port, text = demo.port, demo.text
    assert f"FTPS (explicit TLS) on 127.0.0.1:{port}" in text
    assert f"user:     {DEMO_USER}" in text
    assert re.search(r"password: demo-[0-9a-f]{12}\n", text)


def test_printed_curl_commands_work(demo):
    port, text = demo.port, demo.text
    cmds = printed_commands(text, "curl")
    assert len(cmds) == 3, cmds
    listing, get, put = cmds
    home = pwd.getpwnam(DEMO_USER).pw_dir
    r = run(get)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from ftpsd\n"
    r = run(put)
    assert r.returncode == 0, r.stderr
    with open("/etc/os-release") as a, open(os.path.join(home, "os-release")) as b:
        assert a.read() == b.read()
    r = run(listing)
    assert r.returncode == 0, r.stderr
    names = [line.split()[-1] for line in r.stdout.splitlines()]
    assert "hello.txt" in names and "os-release" in names, r.stdout


def test_printed_lftp_command_works(demo):
    port, text = demo.port, demo.text
    (cmd,) = printed_commands(text, "lftp")
    with tempfile.TemporaryDirectory() as d:
        r = run(f"cd {d} && {cmd}")
        assert r.returncode == 0, r.stderr
        assert "hello.txt" in r.stdout
        with open(os.path.join(d, "hello.txt")) as fh:
            assert fh.read() == "hello from ftpsd\n"


# Last in this file: it stops the demo.
def test_demo_clean_removes_what_demo_created(demo):
    """The demo says how to undo it, and make demo-clean removes every account and file it
    created (nothing that was there before)."""
    text = demo.text
    tail = text[text.index("Then 'make demo-clean' removes what make demo created:"):]
    new_users = [u for u, was in demo.had.items() if not was]
    home = pwd.getpwnam(DEMO_USER).pw_dir if DEMO_USER in new_users else None
    for user in new_users:
        assert re.search(rf"^  (system )?account {user}\b", tail, re.M), tail
    if home:
        assert f"and its home {home}" in tail
    if not demo.had_pam:
        assert "\n  /etc/pam.d/ftpsd\n" in tail
    assert f"\n  {ROOT}/demo (certificate" in tail
    stop(demo.proc)
    r = subprocess.run(["make", "-s", "demo-clean"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for user, was in demo.had.items():
        assert exists(user) == was, user
        if not was:
            with pytest.raises(KeyError):
                grp.getgrnam(user)
    if home:
        assert not os.path.exists(home)
    assert os.path.exists("/etc/pam.d/ftpsd") == demo.had_pam
    assert not os.path.exists(os.path.join(ROOT, "demo"))
