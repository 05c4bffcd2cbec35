"""Fault injection (issue "Reliability"): clients that vanish mid-upload with a TCP reset, a full
file system during STOR, data workers killed by signals, crashing front and user processes
(the monitor logs it, closes the PAM session and leaves no process behind), login and idle
timeouts, and repeated bad passwords."""
import ftplib
import io
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time

import pytest

from ftpsd_fixture import LIBDIR, USERS, connect_from_elsewhere
from reliability import (RUN, SyslogMark, alive, assert_server_works, children, count,
                         descendants, epsv_port, kill_leftovers, log_lines, make_user_dir, parts,
                         put, read_to_eof, report, rst_close, session_tree, user_dir_fixture,
                         wait_until)

ALICE = USERS["alice"][0]


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    yield
    report(request, "test_faults.py faults injected",
           ["client resets", "disk full", "workers killed", "processes crashed", "timeouts",
            "bad passwords"])


wd = user_dir_fixture("fault_")


def client(server, cwd=None, user="alice"):
    f = server.ftps_reuse(user, timeout=30)
    f.voidcmd("TYPE I")
    if cwd:
        f.cwd(cwd)
    return f


def expect_reply(f, *codes):
    """Reads one reply; returns it; fails unless its code is one of codes."""
    try:
        resp = f.getresp()
    except ftplib.Error as e:
        resp = str(e)
    assert resp[:3] in {str(c) for c in codes}, resp
    return resp


# --- clients that vanish mid-upload (TCP RST) -----------------------------------------------

@pytest.mark.parametrize("existing", [False, True], ids=["new-name", "existing-file"])
@pytest.mark.parametrize("which", ["data", "control", "both"])
def test_reset_mid_upload(make_server, wd, which, existing):
    """The client resets the data connection, the control connection or both in the middle of a
    STOR (SO_LINGER 0: RST, no FIN, no close_notify): nothing under the final name (or the old
    content intact), no temporary file after a few seconds; a reset data connection costs the
    transfer (426) and the session goes on; a reset control connection ends the session and
    every one of its processes."""
    name, path = wd
    s = make_server()
    target = os.path.join(path, "up.bin")
    before = b"old content\n" * 100
    if existing:
        put(target, before)
    f = client(s, name)
    mon, front, user = session_tree(s, ALICE)
    conn = f.transfercmd("STOR up.bin")
    chunk = os.urandom(256 * 1024)
    for _ in range(6):
        conn.sendall(chunk)
    assert wait_until(lambda: len(parts(path)) == 1, 5), os.listdir(path)
    procs = descendants(s.proc.pid)
    assert len(procs) == 4, procs          # monitor, front, user, data worker
    count("client resets")
    if which in ("data", "both"):
        rst_close(conn)
    if which in ("control", "both"):
        rst_close(f.sock)
    if which == "data":
        expect_reply(f, 426)
        assert wait_until(lambda: parts(path) == [], 5), os.listdir(path)
        assert f.voidcmd("NOOP").startswith("200")
        data = os.urandom(5000)
        f.storbinary("STOR after.bin", io.BytesIO(data))
        with open(os.path.join(path, "after.bin"), "rb") as fh:
            assert fh.read() == data
        f.quit()
    else:
        got, closed = read_to_eof(conn, 5) if which == "control" else (b"", True)
        assert closed, "the server kept the data connection open after the control reset"
        if which == "control":
            conn.close()
    try:
        assert wait_until(lambda: not alive(procs), 15), \
            f"session processes still running: {alive(procs)}"
    finally:
        kill_leftovers(procs)
    assert parts(path) == [], os.listdir(path)
    if existing:
        with open(target, "rb") as fh:
            assert fh.read() == before
    else:
        assert not os.path.exists(target)
    assert children(s.proc.pid) == []
    assert_server_works(s)


# --- disk full ------------------------------------------------------------------------------

@pytest.fixture
def small_fs(env):
    """A 2 MiB tmpfs with a directory per user, for root_dir = <mount>/%u."""
    mnt = env.path(f"tmpfs-{RUN}-{secrets.token_hex(3)}")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "ftpsd-full", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(mnt)
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    for u, (uid, _) in USERS.items():
        os.mkdir(os.path.join(mnt, u))
        os.chown(os.path.join(mnt, u), uid, uid)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True)
        os.rmdir(mnt)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_disk_full_during_stor(make_server, small_fs):
    """Uploading more than fits: 452 (or 552), the temporary file is removed, the space is free
    again, and the session goes on (NOOP, a small upload, an upload over an existing file that
    does not fit leaves the old content)."""
    s = make_server(root_dir=os.path.join(small_fs, "%u"))
    home = os.path.join(small_fs, "alice")
    empty = free_bytes(home)
    f = client(s)
    assert f.pwd() == "/"
    count("disk full")
    with pytest.raises(ftplib.Error) as ei:
        f.storbinary("STOR huge.bin", io.BytesIO(os.urandom(4 * 1024 * 1024)))
    assert str(ei.value)[:3] in ("452", "552"), ei.value
    assert wait_until(lambda: parts(home) == [], 3), os.listdir(home)
    assert not os.path.exists(os.path.join(home, "huge.bin"))
    assert free_bytes(home) == empty
    assert f.voidcmd("NOOP").startswith("200")
    small = os.urandom(100000)
    f.storbinary("STOR small.bin", io.BytesIO(small))
    with open(os.path.join(home, "small.bin"), "rb") as fh:
        assert fh.read() == small
    # Replacing an existing file with one that does not fit keeps the old one.
    count("disk full")
    with pytest.raises(ftplib.Error) as ei:
        f.storbinary("STOR small.bin", io.BytesIO(os.urandom(3 * 1024 * 1024)))
    assert str(ei.value)[:3] in ("452", "552"), ei.value
    with open(os.path.join(home, "small.bin"), "rb") as fh:
        assert fh.read() == small
    assert wait_until(lambda: parts(home) == [], 3), os.listdir(home)
    out = io.BytesIO()
    f.retrbinary("RETR small.bin", out.write)
    assert out.getvalue() == small
    f.quit()


def test_disk_already_full(make_server, small_fs):
    """A file system with no free block at all: the upload fails with 452/552 and leaves
    nothing; once space is freed, uploads work again in the same session."""
    s = make_server(root_dir=os.path.join(small_fs, "%u"))
    home = os.path.join(small_fs, "alice")
    filler = os.path.join(small_fs, "filler")
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    assert free_bytes(home) < 4096
    f = client(s)
    count("disk full")
    with pytest.raises(ftplib.Error) as ei:
        f.storbinary("STOR x.bin", io.BytesIO(os.urandom(50000)))
    assert str(ei.value)[:3] in ("452", "552"), ei.value
    assert wait_until(lambda: parts(home) == [], 3)
    assert not os.path.exists(os.path.join(home, "x.bin"))
    os.unlink(filler)
    assert f.voidcmd("NOOP").startswith("200")
    f.storbinary("STOR x.bin", io.BytesIO(b"fits now"))
    with open(os.path.join(home, "x.bin"), "rb") as fh:
        assert fh.read() == b"fits now"
    f.quit()


# --- data workers killed by a signal --------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
@pytest.mark.parametrize("direction", ["download", "upload"])
def test_worker_killed_mid_transfer(make_server, wd, syslog, direction, sig):
    """The data worker dies of a signal in the middle of a transfer: 426 or 451, nothing stored,
    and the session goes on (NOOP and a new transfer work)."""
    name, path = wd
    s = make_server()
    mark = SyslogMark(syslog)
    big = os.path.join(path, "big.bin")
    with open(big, "wb") as fh:
        fh.truncate(64 * 1024 * 1024)
    os.chown(big, ALICE, ALICE)
    f = client(s, name)
    mon, front, user = session_tree(s, ALICE)
    if direction == "download":
        conn = f.transfercmd("RETR big.bin")
        got = 0
        while got < 200000:
            got += len(conn.recv(65536))
    else:
        conn = f.transfercmd("STOR up.bin")
        for _ in range(4):
            conn.sendall(os.urandom(256 * 1024))
        assert wait_until(lambda: len(parts(path)) == 1, 5)
    workers = children(front)
    assert len(workers) == 1, workers
    os.kill(workers[0], sig)
    count("workers killed")
    resp = expect_reply(f, 426, 451)
    read_to_eof(conn, 5)
    conn.close()
    assert wait_until(lambda: children(front) == [], 3)
    if direction == "upload":
        assert wait_until(lambda: parts(path) == [], 3), os.listdir(path)
        assert not os.path.exists(os.path.join(path, "up.bin"))
    assert f.voidcmd("NOOP").startswith("200")
    data = os.urandom(70000)
    f.storbinary("STOR after.bin", io.BytesIO(data))
    out = io.BytesIO()
    f.retrbinary("RETR after.bin", out.write)
    assert out.getvalue() == data
    f.quit()
    died = f"data transfer process died (signal {int(sig)})"
    log = mark.text(wait_for=re.compile(rf" ftpsd\[{front}\]: .*{re.escape(died)}"))
    if log is not None:
        assert any(died in l for l in log_lines(log, {front})), log_lines(log, {mon, front})
    assert f"signal {int(sig)}" in resp, resp


# --- crashing front and user processes: the monitor cleans up ------------------------------

@pytest.fixture(scope="module")
def recording_pam(env):
    """A PAM service (pam_wrapper's service directory) whose session stage runs pam_exec with a
    script that records open_session / close_session with the monitor's pid."""
    log = env.path("ftpsd-rec-" + secrets.token_hex(3) + ".log")
    script = log[:-4] + ".sh"
    with open(script, "w") as fh:
        fh.write(f'#!/bin/sh\necho "$PAM_TYPE $PAM_USER $PPID" >> {log}\nexit 0\n')
    os.chmod(script, 0o755)
    name = env.pam_matrix_service("ftpsd-rec-",
                                  [f"session required {LIBDIR}/security/pam_exec.so {script}"])
    open(log, "w").close()
    return name, log


def pam_records(log):
    with open(log) as fh:
        return [l.split() for l in fh.read().splitlines()]


def crash_session(make_server, recording_pam, syslog, **conf):
    """A dedicated server on the recording PAM service and one logged-in session on it."""
    service, log = recording_pam
    s = make_server(pam_service=service, **conf)
    mark = SyslogMark(syslog)
    r = s.tls_raw("alice", prot=True, timeout=30)
    mon, front, user = session_tree(s, ALICE)
    assert wait_until(lambda: ["open_session", "alice", str(mon)] in pam_records(log), 5), \
        pam_records(log)
    return s, r, mark, (mon, front, user), log


@pytest.mark.parametrize("victim", ["user", "front"])
def test_crash_of_front_or_user_process(make_server, recording_pam, syslog, victim):
    """kill -SEGV the user process or the front: the client is told (421) or disconnected, the
    monitor logs the crash, closes the PAM session and exits; no process of the session is
    left, and the server takes new sessions."""
    s, r, mark, (mon, front, user), log = crash_session(make_server, recording_pam, syslog)
    procs = descendants(s.proc.pid)
    assert {mon, front, user} <= set(procs)
    os.kill(user if victim == "user" else front, signal.SIGSEGV)
    count("processes crashed")
    try:
        if victim == "user":
            # The front answers NOOP itself, unless it has already seen the user process go
            # (it watches it while idle); the first command that needs the user process finds
            # it gone: 421, and the connection is closed.
            code, lines = r.cmd("NOOP")
            if code == 200:
                code, lines = r.cmd("PWD")
            assert code == 421, lines
        got, closed = read_to_eof(r.sock, 5)
        assert closed, f"connection still open after the {victim} process crashed"
        assert wait_until(lambda: not alive(procs), 15), \
            f"session processes still running: {alive(procs)}"
    finally:
        kill_leftovers(procs)
        r.close()
    assert ["close_session", "alice", str(mon)] in pam_records(log), pam_records(log)
    text = mark.text(wait_for=re.compile(rf" ftpsd\[{mon}\]: .*disconnect after \d+ s"))
    if text is not None:
        mine = log_lines(text, {mon, front, user})
        assert any(f"{victim} process died of signal 11" in l for l in mine), mine
        assert any("disconnect after" in l for l in mine), mine
    assert_server_works(s)


@pytest.mark.parametrize("victim", ["user", "front"])
def test_sigkill_of_a_session_process_is_logged(make_server, recording_pam, syslog, victim):
    """kill -9 (an administrator, or the kernel's out-of-memory killer) of the front or the
    user process: the session ended with only its "disconnect" line; the monitor now says
    which process was killed. Its own SIGKILLs it logs where it sends them."""
    s, r, mark, (mon, front, user), log = crash_session(make_server, recording_pam, syslog)
    procs = descendants(s.proc.pid)
    os.kill(user if victim == "user" else front, signal.SIGKILL)
    count("processes crashed")
    try:
        if victim == "user":
            r.cmd("PWD")
        read_to_eof(r.sock, 5)
        assert wait_until(lambda: not alive(procs), 15), alive(procs)
    finally:
        kill_leftovers(procs)
        r.close()
    text = mark.text(wait_for=re.compile(rf" ftpsd\[{mon}\]: .*disconnect after \d+ s"))
    if text is None:
        pytest.skip("no syslog to read")
    mine = log_lines(text, {mon})
    assert any(f"{victim} process was killed (SIGKILL" in l for l in mine), mine


def test_monitor_killed_ends_the_session(make_server, recording_pam, syslog):
    """kill -9 of the monitor: the front and the user process were re-parented and went on
    serving (uploads included) with no one to log them or close PAM's session, until the
    client left. Now they get SIGTERM at the monitor's death (parent-death signal): the client
    is told 421, the front says why in the log, and no process of the session is left."""
    s, r, mark, (mon, front, user), log = crash_session(make_server, recording_pam, syslog)
    procs = descendants(s.proc.pid)
    os.kill(mon, signal.SIGKILL)
    count("processes crashed")
    try:
        code, lines = r.reply()
        assert code == 421 and "shutting down" in lines[0], lines
        got, closed = read_to_eof(r.sock, 5)
        assert closed
        assert wait_until(lambda: not alive(procs), 10), \
            f"session processes still running: {alive(procs)}"
    finally:
        kill_leftovers(procs)
        r.close()
    text = mark.text(wait_for="the monitor process is gone")
    if text is not None:
        assert any("the monitor process is gone; ending the session" in l
                   for l in log_lines(text, {front})), text[-2000:]
    assert_server_works(s)


def test_sigterm_to_the_session_sends_421(make_server, recording_pam, syslog):
    """SIGTERM to the session (its monitor passes it on to the front): RFC 959's 421 and a
    TLS close, not a bare end of the connection; PAM's session is closed."""
    s, r, mark, (mon, front, user), log = crash_session(make_server, recording_pam, syslog)
    procs = descendants(s.proc.pid)
    os.kill(mon, signal.SIGTERM)
    try:
        code, lines = r.reply()
        assert code == 421 and "shutting down" in lines[0], lines
        got, closed = read_to_eof(r.sock, 5)
        assert closed
        assert wait_until(lambda: not alive(procs), 10), alive(procs)
    finally:
        kill_leftovers(procs)
        r.close()
    assert ["close_session", "alice", str(mon)] in pam_records(log), pam_records(log)


@pytest.mark.parametrize("direction", ["o", "i"], ids=["download", "upload"])
@pytest.mark.parametrize("who", ["monitor", "all"])
def test_sigterm_mid_transfer_is_in_the_xferlog(make_server, env, wd, direction, who):
    """A session ended mid-transfer (SIGTERM to its monitor, or to every process as systemctl
    stop sends it): the transfer is in the xferlog as incomplete ('i'), with the bytes moved
    so far, and the client gets 421. It was not recorded at all."""
    name, path = wd
    log = env.path(f"xferlog-term-{direction}-{who}")
    s = make_server(xferlog_file=log)
    size = 64 * 1024 * 1024
    if direction == "o":
        put(os.path.join(path, "big.bin"), b"\0" * size)
    f = client(s, name)
    mon, front, user = session_tree(s, ALICE)
    conn = f.transfercmd("RETR big.bin" if direction == "o" else "STOR up.bin")
    if direction == "o":
        assert wait_until(lambda: len(conn.recv(65536)) > 0, 5)   # under way; then unread
    else:
        conn.sendall(os.urandom(256 * 1024))
        # under way: some of it written (the bytes recorded are those the worker wrote)
        assert wait_until(lambda: len(parts(path)) == 1 and os.path.getsize(parts(path)[0]) > 0,
                          5), os.listdir(path)
    procs = descendants(s.proc.pid)
    try:
        for pid in ([mon] if who == "monitor" else list(procs)):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        assert expect_reply(f, 421).startswith("421 Service not available")
        assert wait_until(lambda: not alive(procs), 10), alive(procs)
    finally:
        kill_leftovers(procs)
        conn.close()
    assert wait_until(lambda: os.path.exists(log) and os.path.getsize(log) > 0, 5)
    fields = open(log).read().split()
    # ctime date (5 fields), then: time host size file type action direction access user
    # service auth-method auth-id status
    assert len(fields) == 18, fields
    file = os.path.join(path, "big.bin" if direction == "o" else "up.bin")
    assert (fields[8], fields[11], fields[17]) == (file, direction, "i"), fields
    assert 0 < int(fields[7]) < size if direction == "o" else int(fields[7]) > 0, fields


@pytest.mark.parametrize("cmd", ["STOR", "STOU"])
def test_user_process_crash_mid_upload_leaves_no_temp_file(make_server, wd, cmd):
    """kill -SEGV the user process during a STOR: the end of the upload gets 421, the session
    ends with all its processes, and no temporary file is left behind. STOU too, and the empty
    file that held its name (it stayed)."""
    name, path = wd
    s = make_server()
    r = s.tls_raw("alice", prot=True, timeout=30)
    mon, front, user = session_tree(s, ALICE)
    assert r.cmd(f"CWD {name}")[0] == 250
    assert r.cmd("TYPE I")[0] == 200
    code, lines = r.cmd("EPSV")
    r.send(f"{cmd} up.bin\r\n")
    d = r.data_connect(lines)
    assert r.reply()[0] == 150
    d.sendall(os.urandom(300000))
    assert wait_until(lambda: len(parts(path)) == 1, 5)
    procs = descendants(s.proc.pid)
    os.kill(user, signal.SIGSEGV)
    count("processes crashed")
    d.sendall(os.urandom(1000))
    d.unwrap()
    d.close()
    try:
        code, lines = r.reply()
        assert code == 421, lines
        assert wait_until(lambda: not alive(procs), 15), alive(procs)
    finally:
        kill_leftovers(procs)
        r.close()
    assert not os.path.exists(os.path.join(path, "up.bin"))
    assert wait_until(lambda: parts(path) == [], 3), os.listdir(path)


@pytest.mark.parametrize("direction", ["download", "upload"])
def test_front_crash_during_transfer_leaves_no_orphan(make_server, recording_pam, syslog, env,
                                                      direction, request):
    """kill -SEGV the front while a transfer is stalled (the client neither reads nor writes):
    the monitor ends the session, and the data worker, a child of the front, must not outlive
    the session as an orphan."""
    s, r, mark, (mon, front, user), log = crash_session(make_server, recording_pam, syslog)
    d = make_user_dir(env, "alice", f"fault_orphan_{RUN}_{direction}")
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    with open(os.path.join(d, "big.bin"), "wb") as fh:
        fh.truncate(64 * 1024 * 1024)
    assert r.cmd("TYPE I")[0] == 200
    code, lines = r.cmd("EPSV")
    sub = os.path.basename(d)
    r.send(f"RETR {sub}/big.bin\r\n" if direction == "download" else f"STOR {sub}/up.bin\r\n")
    dconn = r.data_connect(lines)
    assert r.reply()[0] == 150
    if direction == "download":
        dconn.recv(65536)                   # then stop reading: the worker blocks in a write
    else:
        dconn.sendall(os.urandom(100000))   # then stop sending: the worker blocks in a read
    workers = children(front)
    assert len(workers) == 1
    procs = descendants(s.proc.pid)
    os.kill(front, signal.SIGSEGV)
    count("processes crashed")
    try:
        read_to_eof(r.sock, 5)
        assert wait_until(lambda: mon not in alive(procs), 15), "the monitor did not finish"
        assert ["close_session", "alice", str(mon)] in pam_records(log)
        assert wait_until(lambda: not alive(procs), 5), \
            f"orphaned session processes (the data worker is {workers[0]}): {alive(procs)}"
    finally:
        kill_leftovers(procs)
        dconn.close()
        r.close()


# --- timeouts -------------------------------------------------------------------------------

def test_login_timeout_closes_with_421(make_server):
    s = make_server(login_timeout=2)
    r = s.raw()
    assert r.reply()[0] == 220
    r.starttls(s.env.cert)
    procs = descendants(s.proc.pid)
    t0 = time.time()
    r.sock.settimeout(10)
    count("timeouts")
    code, lines = r.reply()
    took = time.time() - t0
    assert code == 421 and "timeout" in lines[0].lower(), lines
    assert took < 6, took
    got, closed = read_to_eof(r.sock, 5)
    assert closed
    assert wait_until(lambda: not alive(procs), 10), alive(procs)
    assert_server_works(s)


def test_idle_timeout_closes_with_421(make_server, wd):
    """Idle after login (with a passive listener open): 421, the connection closes, the listener
    is gone, and every process of the session ends."""
    name, path = wd
    s = make_server(idle_timeout=2)
    r = s.tls_raw("alice", prot=True, timeout=30)
    code, lines = r.cmd("EPSV")
    port = epsv_port(lines)
    procs = descendants(s.proc.pid)
    r.sock.settimeout(10)
    t0 = time.time()
    count("timeouts")
    code, lines = r.reply()
    assert code == 421 and "idle" in lines[0].lower(), lines
    assert time.time() - t0 < 6
    got, closed = read_to_eof(r.sock, 5)
    assert closed
    assert wait_until(lambda: not alive(procs), 10), alive(procs)
    with pytest.raises(ConnectionRefusedError):
        connect_from_elsewhere(s.host, port, timeout=3)
    assert_server_works(s)


# --- repeated bad passwords -------------------------------------------------------------------

DELAY_MS = 400
MAX_FAIL = 5


def bad_login(r, user="alice"):
    assert r.cmd(f"USER {user}")[0] == 331
    t0 = time.monotonic()
    code, lines = r.cmd("PASS wrong-" + secrets.token_hex(4))
    return code, lines, time.monotonic() - t0


def test_client_that_never_reads_replies_is_dropped_after_reply_timeout(make_server):
    """reply_timeout: commands pipelined by a client that never reads the replies fill the
    connection's buffers; the session ends reply_timeout after the first reply that cannot be
    sent (it was a fixed 30 s), with all its processes."""
    s = make_server(reply_timeout=2, idle_timeout=60)
    r = s.tls_raw("alice")
    procs = descendants(s.proc.pid)
    assert len(procs) == 3, procs
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    r.sock.settimeout(30)
    burst = b"HELP\r\n" * 2000
    t0 = time.time()
    sent = 0
    try:
        while time.time() - t0 < 20:
            r.sock.sendall(burst)
            sent += 1
    except OSError:
        pass
    count("timeouts")
    try:
        assert wait_until(lambda: not alive(procs), 20), alive(procs)
        took = time.time() - t0
        assert sent > 1 and took < 12, (sent, took)
    finally:
        kill_leftovers(procs)
        r.close()


def test_ten_bad_passwords(make_server, syslog):
    """10 wrong passwords from one client: every failure is answered only after fail_delay_ms,
    the connection is cut with 421 at max_login_failures, and on the next connection the delay
    applies again from its first attempt. The right password still works afterwards."""
    s = make_server(fail_delay_ms=DELAY_MS, max_login_failures=MAX_FAIL)
    mark = SyslogMark(syslog)
    attempts = 0
    monitors = set()
    for conn in range(2):
        r = s.raw(timeout=20)
        assert r.reply()[0] == 220
        monitors.update(children(s.proc.pid))
        r.starttls(s.env.cert)
        for i in range(1, MAX_FAIL + 1):
            code, lines, took = bad_login(r)
            attempts += 1
            count("bad passwords")
            assert took >= DELAY_MS / 1000 * 0.95, (conn, i, took)
            if i < MAX_FAIL:
                assert code == 530, (conn, i, lines)
            else:
                assert code == 421, (conn, i, lines)
        got, closed = read_to_eof(r.sock, 5)
        assert closed, "connection still open after max_login_failures"
        r.close()
    assert attempts == 10
    assert_server_works(s)
    text = mark.text(wait_for="too many login failures")
    if text is not None:
        wait_until(lambda: sum("too many login failures" in l
                               for l in log_lines(mark.text(), monitors)) == 2, 3)
        mine = log_lines(mark.text(), monitors)
        assert sum("too many login failures; closing" in l for l in mine) == 2, mine
        assert sum("login failed user=alice method=password" in l for l in mine) == 10, mine


def test_pipelined_bad_passwords_are_delayed(make_server):
    """A client that sends all its attempts in one write gains nothing: the answers come at the
    monitor's pace, and the login pipelined after the last allowed failure never runs."""
    s = make_server(fail_delay_ms=DELAY_MS, max_login_failures=MAX_FAIL)
    r = s.raw(timeout=20)
    assert r.reply()[0] == 220
    r.starttls(s.env.cert)
    burst = "".join(f"USER alice\r\nPASS bad{i}\r\n" for i in range(MAX_FAIL))
    burst += f"USER alice\r\nPASS {USERS['alice'][1]}\r\nNOOP\r\n"
    t0 = time.monotonic()
    r.send(burst)
    codes = []
    for _ in range(MAX_FAIL):
        codes.append(r.reply()[0])
        codes.append(r.reply()[0])
        count("bad passwords")
    took = time.monotonic() - t0
    assert codes == [331, 530] * (MAX_FAIL - 1) + [331, 421], codes
    assert took >= MAX_FAIL * DELAY_MS / 1000 * 0.95, took
    got, closed = read_to_eof(r.sock, 5)
    assert closed and b"230" not in got, got
    r.close()


# --- file times gmtime cannot convert (found by fuzz_listing) ------------------------------------

def test_extreme_file_times(make_server, small_fs):
    """tmpfs keeps any 64-bit mtime: LIST, MLSD, MLST and MDTM clamp such times into years
    0000..9999 instead of crashing the user process or printing stack garbage."""
    s = make_server(root_dir=os.path.join(small_fs, "%u"))
    home = os.path.join(small_fs, "alice")
    times = {"max": 2**63 - 1, "min": -2**63, "year-overflow": 67768036191676799}
    for name, t in times.items():
        p = os.path.join(home, name)
        with open(p, "wb") as fh:
            fh.write(b"x")
        os.chown(p, USERS["alice"][0], USERS["alice"][0])
        os.utime(p, (0, t))
        assert os.stat(p).st_mtime_ns // 10**9 == t, "tmpfs clamped the time"
    f = client(s)
    assert f.sendcmd("MDTM max") == "213 99991231235959"
    assert f.sendcmd("MDTM year-overflow") == "213 99991231235959"
    assert f.sendcmd("MDTM min") == "213 00000101000000"
    lines = []
    f.retrlines("LIST", lines.append)
    by_name = {ln.split()[-1]: ln for ln in lines}
    assert "Dec 31  9999 max" in by_name["max"], lines
    assert "Dec 31  9999 year-overflow" in by_name["year-overflow"], lines
    assert re.search(r"Jan 01 +0 min$", by_name["min"]), lines
    facts = dict((n, fa) for n, fa in f.mlsd(facts=["modify"]))
    assert facts["max"]["modify"] == "99991231235959"
    assert facts["min"]["modify"] == "00000101000000"
    assert "modify=99991231235959;" in f.sendcmd("MLST max")
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()


@pytest.mark.parametrize("who", ["front", "monitor"])
def test_sigterm_just_before_the_wait_is_not_lost(make_server, env, who):
    """A SIGTERM that arrives after the front (or the monitor) last checked for one and before
    it waits: it was noticed at the next wake-up (the client's next command or the login
    timeout). tests/lib/term_race_shim.c holds that window open for two seconds; the signal
    comes within it, and the client is told 421 when the window closes."""
    s = make_server(login_timeout=60, prefix=[
        "env", "LD_PRELOAD=" + env.shim_preload("term_race_shim"), "TERM_RACE_SHIM=" + who])
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    try:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220")
        assert wait_until(lambda: any(children(m) for m in children(s.proc.pid)), 1)
        mon = children(s.proc.pid)[0]
        os.kill(mon if who == "monitor" else children(mon)[0], signal.SIGTERM)
        start = time.monotonic()
        line = f.readline()
        assert line.startswith(b"421 ") and b"shutting down" in line, line
        assert time.monotonic() - start < 5
    finally:
        sock.close()
