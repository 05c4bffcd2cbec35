"""A compromised front (the unprivileged process that reads the client's bytes) can send the
root monitor any message. The test build's XTST MSG makes a session's front send one: the
monitor refuses what a front may not ask (and logs it), ends the session where the protocol
between them is broken, and never acts on a refused request."""
import os
import struct
import time

import pytest

from ftpsd_fixture import HOOKS_BINARY, USERS
from reliability import SyslogMark, alive, descendants, kill_leftovers, read_to_eof, wait_until

# src/privsep.h, front -> monitor (and one the monitor sends, never receives)
MSG_LOGIN, MSG_LOGIN_RESULT, MSG_LOGOUT, MSG_CLEANUP, MSG_PEER, MSG_XFERLOG = 1, 2, 3, 5, 6, 7


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def lstr(b):
    """A msg_put_str/msg_put_blob field: u32 length, then the bytes."""
    return u32(len(b)) + b


def xferlog(path=b"/f.bin", direction=b"o", typ=b"b", nbytes=1234):
    return u64(nbytes) + u32(1500) + u32(ord(direction)) + u32(ord(typ)) + u32(1) + lstr(path)


def cleanup(path, reserved=b""):
    return lstr(path) + lstr(reserved)


@pytest.fixture
def hooks_server(make_server, env):
    if not os.path.exists(HOOKS_BINARY):
        pytest.skip("build/ftpsd-testhooks is built by make check")

    def make(**conf):
        return make_server(binary=HOOKS_BINARY, **conf)
    return make


def send(r, mtype, payload=b""):
    code, lines = r.cmd(f"XTST MSG {mtype} {payload.hex()}")
    assert code == 200, lines


def session(s, user="alice"):
    r = s.tls_raw(user, timeout=15)
    return r, descendants(s.proc.pid)


def ends(r, procs):
    """The session ends: the connection closes and no process of it is left."""
    try:
        _, closed = read_to_eof(r.sock, 10)
        assert closed
        assert wait_until(lambda: not alive(procs), 10), alive(procs)
    finally:
        kill_leftovers(procs)


def goes_on(r):
    assert r.cmd("NOOP")[0] == 200
    assert r.cmd("PWD")[0] == 257


def logged(mark, text, times=1):
    """The log says text (times times), where the log can be read; returns the log or None."""
    t = mark.text()
    if t is None:
        return None
    wait_until(lambda: mark.text().count(text) >= times, 5)
    t = mark.text()
    assert t.count(text) == times, t[-3000:]
    return t


@pytest.mark.parametrize("mtype,payload,why", [
    (99, b"", "unexpected message 99 from the front; ending"),
    (MSG_LOGIN_RESULT, u32(1) + u32(230), "unexpected message 2 from the front; ending"),
    (MSG_LOGIN, u32(0) + lstr(b"bob") + u32(1) + lstr(USERS["bob"][1].encode()) + u32(0),
     "malformed or out-of-order login request from the front; ending"),
    (MSG_LOGOUT, b"x", None),
    (MSG_PEER, u32(2) + lstr(bytes([192, 0, 2, 1])) + u32(1234),
     "unexpected client address from the front; ending"),
], ids=["unknown-type", "monitor-type", "second-login", "logout-with-payload", "peer-unasked"])
def test_broken_protocol_ends_the_session(hooks_server, syslog, mtype, payload, why):
    """A message the front may not send at that point, or a malformed one, ends the session:
    a second login (as bob, with bob's password) from a logged-in session, a client address
    without a trusted balancer, a monitor's own message type, one it does not know."""
    s = hooks_server()
    r, procs = session(s)
    mark = SyslogMark(syslog)
    r.send(f"XTST MSG {mtype} {payload.hex()}\r\n")
    ends(r, procs)
    if why:
        logged(mark, why)
    # The second login did not happen: bob never logged in. Only this session's lines (its
    # processes'): rsyslogd may write an earlier test's lines after the mark.
    t = mark.text()
    if t is not None:
        mine = [l for l in t.splitlines() if any(f"ftpsd[{p}]:" in l for p in procs)]
        assert mine and not [l for l in mine if "user=bob" in l], t


def test_login_attempts_past_the_limit_end_the_session(hooks_server, syslog):
    """A front that sends login after login without waiting for answers gets no more tries
    than max_login_failures (the monitor counts them, and delays each failure itself): the
    one after the last ends the session, and it is never PAM's to judge."""
    s = hooks_server(max_login_failures=2, fail_delay_ms=0)
    r = s.raw()
    assert r.reply()[0] == 220
    r.starttls(s.env.cert)
    procs = descendants(s.proc.pid)
    mark = SyslogMark(syslog)
    for _ in range(2):
        send(r, MSG_LOGIN, u32(0) + lstr(b"alice") + u32(1) + lstr(b"wrong") + u32(0))
    wait_until(lambda: (mark.text() or "").count("login failed user=alice") == 2, 5)
    right = u32(0) + lstr(b"alice") + u32(1) + lstr(USERS["alice"][1].encode()) + u32(0)
    r.send(f"XTST MSG {MSG_LOGIN} {right.hex()}\r\n")
    ends(r, procs)
    t = logged(mark, "malformed or out-of-order login request from the front; ending")
    if t is not None:
        assert "login ok" not in t, t


def test_cleanup_request_out_of_place_is_ignored(hooks_server, env, syslog):
    """MSG_CLEANUP names an upload's temporary file for the monitor to remove as the user: one
    before login, one for a name that is no temporary file's, one with '..' in the path, and
    one for a temporary name in a directory that is not canonical are refused and logged; the
    files stay and the session goes on."""
    s = hooks_server()
    home = env.home("alice")
    d = os.path.join(home, "hostile-cleanup")
    os.makedirs(d, exist_ok=True)
    os.chown(d, USERS["alice"][0], -1)
    keep = os.path.join(d, "keep.txt")
    temp = os.path.join(d, ".ftpsd-0123456789ab.part")
    for p in (keep, temp):
        with open(p, "w") as fh:
            fh.write("x")
        os.chown(p, USERS["alice"][0], -1)
    try:
        r = s.raw()
        assert r.reply()[0] == 220
        r.starttls(s.env.cert)
        mark = SyslogMark(syslog)
        send(r, MSG_CLEANUP, cleanup(b"/hostile-cleanup/.ftpsd-0123456789ab.part"))
        r.login("alice")
        for path in (b"/hostile-cleanup/keep.txt", b"/hostile-cleanup/../hostile-cleanup/"
                     b".ftpsd-0123456789ab.part", b"hostile-cleanup/.ftpsd-0123456789ab.part",
                     b"/hostile-cleanup/.ftpsd-0123456789ab.part\n"):
            send(r, MSG_CLEANUP, cleanup(path))
        # A reserved name that is not beside the temporary file is refused too.
        send(r, MSG_CLEANUP, cleanup(b"/hostile-cleanup/.ftpsd-0123456789ab.part",
                                     b"/elsewhere/keep.txt"))
        goes_on(r)
        assert os.path.exists(keep) and os.path.exists(temp)
        t = logged(mark, "unexpected cleanup request from the front; ignored", 6)
        if t is not None:
            assert "removed the temporary file" not in t, t
        # What it is for still works: the temporary file's own name, after login.
        send(r, MSG_CLEANUP, cleanup(b"/hostile-cleanup/.ftpsd-0123456789ab.part"))
        assert wait_until(lambda: not os.path.exists(temp), 5)
        assert os.path.exists(keep)
        goes_on(r)
        r.cmd("QUIT")
    finally:
        for p in (keep, temp):
            if os.path.exists(p):
                os.unlink(p)
        os.rmdir(d)


def test_transfer_record_out_of_place_is_ignored(hooks_server, env, syslog):
    """MSG_XFERLOG before login, with a direction or type xferlog(5) does not have, a relative
    or non-canonical path, or bytes after its fields writes nothing and is logged; a
    well-formed one after login is written with its name's newline and spaces made
    underscores (one line per record, whatever the front sends)."""
    path = env.path(f"xferlog-hostile-{time.time_ns()}")
    s = hooks_server(xferlog_file=path)
    r = s.raw()
    assert r.reply()[0] == 220
    r.starttls(s.env.cert)
    mark = SyslogMark(syslog)
    send(r, MSG_XFERLOG, xferlog())
    r.login("alice")
    for bad in (xferlog(direction=b"x"), xferlog(typ=b"c"), xferlog(path=b"f.bin"),
                xferlog(path=b"/a/../../../etc/shadow"), xferlog() + b"\0"):
        send(r, MSG_XFERLOG, bad)
    send(r, MSG_XFERLOG, xferlog(path=b"/two\nlines here"))
    goes_on(r)
    r.cmd("QUIT")
    assert wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 0, 5)
    time.sleep(0.5)
    lines = open(path).read().splitlines()
    assert len(lines) == 1, lines
    f = lines[0].split()
    assert (f[7], f[8], f[11], f[13]) == ("1234", env.home("alice") + "/two_lines_here", "o",
                                          "alice"), f
    logged(mark, "unexpected transfer record from the front; ignored", 6)
