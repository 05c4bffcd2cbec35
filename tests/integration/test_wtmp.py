"""Logins in the wtmp file (ftpsd.conf(5) wtmp_file): a USER_PROCESS record at login and a
DEAD_PROCESS record on the same line at its end, so that last(1) lists FTP sessions."""
import os
import re
import shutil
import subprocess
import time

import pytest

from ftpsd_fixture import USERS
from reliability import children

USER_PROCESS, DEAD_PROCESS = "7", "8"


def records(path):
    """utmpdump's view of the file: (type, pid, user, line, host, addr) per record."""
    out = subprocess.run(["utmpdump", path], capture_output=True, text=True, check=True).stdout
    recs = []
    for l in out.splitlines():
        f = [x.strip() for x in re.findall(r"\[(.*?)\]", l)]
        if len(f) >= 8:
            # utmpdump writes the pid with at least 5 digits ("[08345]").
            recs.append((f[0], str(int(f[1])), f[3], f[4], f[5], f[6]))
    return recs


def wait_records(path, n, timeout=5):
    deadline = time.time() + timeout
    while True:
        r = records(path)
        if len(r) >= n or time.time() > deadline:
            return r
        time.sleep(0.05)


@pytest.fixture
def wtmp(env):
    if not shutil.which("utmpdump"):
        pytest.skip("utmpdump (util-linux) is not installed")
    path = env.path(f"wtmp-{time.time_ns()}")
    open(path, "w").close()
    os.chmod(path, 0o664)
    return path


def test_login_and_logout_are_recorded(make_server, wtmp):
    """alice's session: a login record with her name, line ftpd<monitor pid> and address, then
    the end on the same line; last(1) shows it as one session that is gone."""
    s = make_server(wtmp_file=wtmp)
    f = s.ftps("alice")
    mon = children(s.proc.pid)
    assert len(mon) == 1
    r = wait_records(wtmp, 1)
    assert r == [(USER_PROCESS, str(mon[0]), "alice", f"ftpd{mon[0]}", "127.0.0.1",
                  "127.0.0.1")], r
    f.quit()
    r = wait_records(wtmp, 2)
    assert len(r) == 2 and r[1][:2] == (DEAD_PROCESS, str(mon[0])) and r[1][3] == f"ftpd{mon[0]}", r
    last = subprocess.run(["last", "-f", wtmp, "-w", "-i"], capture_output=True, text=True).stdout
    line = [l for l in last.splitlines() if l.startswith("alice ")]
    assert line and f"ftpd{mon[0]}" in line[0] and "127.0.0.1" in line[0], last
    assert "still logged in" not in line[0], last


def test_failed_and_refused_logins_are_not_recorded(make_server, wtmp):
    """Only sessions that logged in: a wrong password and a session that never logs in leave
    the file empty."""
    s = make_server(wtmp_file=wtmp)
    r = s.tls_raw()
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd("PASS wrong")[0] == 530
    assert r.cmd("QUIT")[0] == 221
    r.close()
    time.sleep(0.5)
    assert records(wtmp) == []


def test_rein_ends_the_record_and_a_new_login_starts_one(make_server, wtmp):
    """REIN logs alice out of a session that stays: her end is recorded then, and bob's login
    on the same connection is a record of its own."""
    s = make_server(wtmp_file=wtmp, allow_rein="yes")
    f = s.ftps("alice")
    assert f.sendcmd("REIN").startswith("220")
    # REIN clears TLS (RFC 4217 section 13): AUTH TLS again before bob logs in.
    f.sock = f.sock.unwrap()
    f.file = f.sock.makefile("r", encoding="utf-8")
    f.voidcmd("AUTH TLS")
    f.sock = f.context.wrap_socket(f.sock, server_hostname="localhost")
    f.file = f.sock.makefile("r", encoding="utf-8")
    f.login("bob", USERS["bob"][1])
    f.quit()
    recs = wait_records(wtmp, 4)
    assert [(t, u) for t, _, u, *_ in recs] == [
        (USER_PROCESS, "alice"), (DEAD_PROCESS, ""), (USER_PROCESS, "bob"), (DEAD_PROCESS, "")], recs
    assert len({rec[3] for rec in recs}) == 1, recs


def test_anonymous_sessions_are_recorded_as_the_anonymous_account(make_server, wtmp, env):
    root = env.path("wtmp-anon")
    os.makedirs(root, exist_ok=True)
    s = make_server(wtmp_file=wtmp, anonymous="yes", anon_root=root)
    f = s.ftps()
    f.login("anonymous", "guest@example.org")
    f.quit()
    recs = wait_records(wtmp, 2)
    assert recs[0][0] == USER_PROCESS and recs[0][2] == "ftp", recs


def test_missing_file_is_not_made(make_server, env):
    """As login(1) and sshd do: no wtmp file, no records, and the login works."""
    path = env.path(f"no-wtmp-{time.time_ns()}")
    s = make_server(wtmp_file=path)
    f = s.ftps("alice")
    f.quit()
    time.sleep(0.3)
    assert not os.path.exists(path)
