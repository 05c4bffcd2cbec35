"""What a session writes to syslog (ftpsd(8) LOGGING): connection, logins, failed logins,
transfers and the disconnection, each line with the session id and the client address."""
import io
import os
import re
import time
import uuid

import pytest

from ftpsd_fixture import USERS


LINE = re.compile(r"ftpsd\[(?P<pid>\d+)\]: \[(?P<sid>[0-9a-f]{12})\] (?P<client>[^ :]+)"
                  r"(?: user=(?P<user>[^:]*))?: (?P<msg>.*)$")


def parse(text):
    out = []
    for l in text.splitlines():
        m = LINE.search(l)
        if m:
            out.append(m.groupdict() | {"line": l})
    return out


def session_lines(log, marker, until, timeout=10):
    """All lines of the session that logged `marker`, once that session has logged `until`."""
    deadline = time.time() + timeout
    while True:
        entries = parse(log.text())
        sids = {e["sid"] for e in entries if marker in e["msg"]}
        if len(sids) == 1:
            sid = sids.pop()
            mine = [e for e in entries if e["sid"] == sid]
            if any(until in e["msg"] for e in mine) or time.time() > deadline:
                return sid, mine
        elif time.time() > deadline:
            pytest.fail(f"{len(sids)} sessions logged {marker!r}:\n{log.text()[-3000:]}")
        time.sleep(0.1)


def find(entries, pattern):
    rx = re.compile(pattern)
    hits = [e for e in entries if rx.search(e["msg"])]
    assert hits, f"no line matching {pattern!r} in:\n" + "\n".join(e["line"] for e in entries)
    return hits[0]


def test_session_is_logged(server, env, log):
    name = f"log-{uuid.uuid4().hex[:10]}.bin"
    data = os.urandom(5000)
    path = os.path.join(env.home("alice"), name)
    with open(path, "wb") as fh:
        fh.write(data)
    try:
        f = server.ftps_reuse()
        try:
            with pytest.raises(Exception):
                f.login("alice", "wrong-password")
            f.login("alice", USERS["alice"][1])
            f.prot_p()
            got = io.BytesIO()
            f.retrbinary(f"RETR {name}", got.write)
            assert got.getvalue() == data
            f.quit()
        finally:
            f.close()
        sid, mine = session_lines(log, f'RETR "/{name}"', "disconnect")
    finally:
        os.unlink(path)

    # The port tells a plain listener (21) from an implicit-TLS one (990) in the log.
    connect = find(mine, rf"^connect to 127\.0\.0\.1 port {server.port}$")
    failed = find(mine, r"^login failed user=alice\b")
    ok = find(mine, r"^login ok user=alice method=password$")
    xfer = find(mine, rf'^RETR "/{re.escape(name)}" bytes=5000 .*\bprot=P\b')
    disc = find(mine, r"^disconnect\b")
    assert "reply=226" in xfer["msg"], xfer["line"]
    assert re.search(r"\btls=TLSv1\.[23]\b", xfer["msg"]), xfer["line"]
    # In order.
    order = [mine.index(e) for e in (connect, failed, ok, xfer, disc)]
    assert order == sorted(order), [e["line"] for e in mine]
    # Every line of the session: same id, the client's address.
    for e in mine:
        assert e["sid"] == sid and e["client"] == "127.0.0.1", e["line"]
    # After the login the lines name the user.
    assert xfer["user"] == "alice" and disc["user"] == "alice"
    # The password is never logged, right or wrong.
    text = log.text()
    assert USERS["alice"][1] not in text
    assert "wrong-password" not in text


def test_session_ids_differ(server, log):
    sids = []
    for _ in range(2):
        r = server.raw()
        r.reply()
        r.starttls(server.env.cert)
        marker = f"nobody-{uuid.uuid4().hex[:10]}"
        assert r.cmd(f"USER {marker}")[0] == 331
        assert r.cmd("PASS x")[0] == 530
        r.cmd("QUIT")
        r.close()
        sid, mine = session_lines(log, marker, "disconnect")
        find(mine, rf"^login failed user={marker}\b")
        find(mine, r"^disconnect \(not logged in\)")
        sids.append(sid)
    assert sids[0] != sids[1]


def test_client_text_cannot_forge_log_lines(server, log):
    """Control characters from the client (here a CR inside a user name) never start a new
    log line."""
    marker = uuid.uuid4().hex[:10]
    r = server.raw()
    r.reply()
    r.starttls(server.env.cert)
    assert r.cmd(f"USER u{marker}\rFORGED{marker}: login ok user=root".encode())[0] == 331
    assert r.cmd("PASS x")[0] == 530
    r.close()
    sid, mine = session_lines(log, f"u{marker}", "disconnect")
    failed = find(mine, rf"^login failed user=u{marker}\?FORGED{marker}")
    for l in log.text().splitlines():
        if f"FORGED{marker}" in l:
            assert l == failed["line"], l


def test_too_many_failures_logged(make_server, log):
    s = make_server(max_login_failures=1)
    marker = f"nobody-{uuid.uuid4().hex[:10]}"
    r = s.raw()
    r.reply()
    r.starttls(s.env.cert)
    assert r.cmd(f"USER {marker}")[0] == 331
    assert r.cmd("PASS x")[0] == 421
    r.close()
    sid, mine = session_lines(log, marker, "disconnect")
    find(mine, r"too many login failures")


def test_timeouts_logged(make_server, log):
    s = make_server(login_timeout=2)
    r = s.raw()
    r.reply()
    r.starttls(s.env.cert)
    marker = f"nobody-{uuid.uuid4().hex[:10]}"
    assert r.cmd(f"USER {marker}")[0] == 331
    assert r.cmd("PASS x")[0] == 530     # logs the marker
    r.sock.settimeout(5)
    assert r.reply()[0] == 421
    r.close()
    sid, mine = session_lines(log, marker, "disconnect")
    find(mine, r"login timeout")


def test_a_path_cannot_forge_a_transfers_outcome(server, env, log):
    """A name holding " bytes=... reply=226" and a path long enough to push the real fields out
    of the 1024-byte line made a discarded upload (426) read as a success. The path is now
    quoted (its quotes escaped) and cut at 1024 bytes inside the quotes, so the real outcome
    always follows it."""
    import socket
    tag = uuid.uuid4().hex[:8]
    dirs = "/".join(f"{tag}{i}" + "d" * 245 for i in range(4))
    os.makedirs(os.path.join(env.home("alice"), dirs))
    uid = USERS["alice"][0]
    d = env.home("alice")
    for part in dirs.split("/"):
        d = os.path.join(d, part)
        os.chown(d, uid, uid)
    forged = 'X" bytes=123456789 secs=0.001 prot=P reply=226 x'
    f = server.ftps_reuse("alice")
    try:
        conn = f.transfercmd(f"STOR {dirs}/{forged}")
        conn.sendall(b"partial data")
        socket.socket.shutdown(conn, socket.SHUT_RDWR)     # no close_notify: discarded
        conn.close()
        with pytest.raises(Exception, match="^426"):
            f.voidresp()
        f.quit()
    finally:
        f.close()
        import shutil
        shutil.rmtree(os.path.join(env.home("alice"), dirs.split("/")[0]), ignore_errors=True)
    sid, mine = session_lines(log, f'STOR "/{tag}0', "disconnect")
    line = find(mine, r'^STOR "')["msg"]
    m = re.fullmatch(r'STOR "((?:[^"\\]|\\.)*)" bytes=(\d+) secs=\S+ prot=P tls=[^=]* reply=(\d+)'
                     r'(?: reason=.*)?', line)
    assert m, line
    assert m.group(3) == "426" and m.group(2) != "123456789", line
    assert m.group(1).endswith("..."), line


def test_file_changes_are_logged(server, env, log):
    """Every command that changes the file tree leaves a line with the canonical path and the
    reply, refusals too: MKD, DELE, RMD, a rename (old -> new), SITE CHMOD with the mode, MFMT
    with the time; XMKD as MKD. A name's quote is escaped, as in transfer lines."""
    d = f"chg-{uuid.uuid4().hex[:10]}"
    f = server.ftps_reuse("alice")
    try:
        f.mkd(d)
        f.cwd(d)
        f.storbinary('STOR a"b.txt', io.BytesIO(b"x"))
        f.rename('a"b.txt', "../" + d + "/c.txt")
        f.sendcmd("SITE CHMOD 640 c.txt")
        f.sendcmd("MFMT 20200102030405 c.txt")
        with pytest.raises(Exception):
            f.delete("missing.txt")
        with pytest.raises(Exception):
            f.sendcmd("RNFR missing.txt")
        f.delete("c.txt")
        f.sendcmd("XMKD sub")
        f.rmd("sub")
        f.cwd("/")
        f.rmd(d)
        f.quit()
    finally:
        f.close()
        if os.path.isdir(os.path.join(env.home("alice"), d)):
            import shutil
            shutil.rmtree(os.path.join(env.home("alice"), d))
    sid, mine = session_lines(log, f'MKD "/{d}"', "disconnect")
    want = [f'MKD "/{d}" reply=257',
            f'RENAME "/{d}/a\\"b.txt" -> "/{d}/c.txt" reply=250',
            f'SITE CHMOD 0640 "/{d}/c.txt" reply=200',
            f'MFMT 20200102030405 "/{d}/c.txt" reply=213',
            f'DELE "/{d}/missing.txt" reply=550',
            f'RNFR "/{d}/missing.txt" reply=550',
            f'DELE "/{d}/c.txt" reply=250',
            f'MKD "/{d}/sub" reply=257',
            f'RMD "/{d}/sub" reply=250',
            f'RMD "/{d}" reply=250']
    got = [e["msg"] for e in mine if re.match(r"^(MKD|RENAME|SITE|MFMT|DELE|RNFR|RMD) ", e["msg"])]
    assert got == want, "\n".join(e["line"] for e in mine)
    assert all(e["user"] == "alice" for e in mine if e["msg"] in want)


# --- the xferlog_file transfer log -------------------------------------------------------------


def xferlog_after_one_upload(make_server, path):
    """One upload by a server started under umask 077, as the shipped units (UMask=0077)."""
    old = os.umask(0o077)
    try:
        s = make_server(xferlog_file=path)
    finally:
        os.umask(old)
    f = s.ftps_reuse("alice")
    f.storbinary(f"STOR xl-{uuid.uuid4().hex}.bin", io.BytesIO(b"x" * 10))
    f.quit()
    deadline = time.time() + 5
    while time.time() < deadline and not (os.path.exists(path) and os.path.getsize(path)):
        time.sleep(0.05)
    assert os.path.getsize(path) > 0


def test_xferlog_created_0640_whatever_the_umask(make_server, env):
    """ftpsd.conf(5): the transfer log is created mode 0640, also under UMask=0077."""
    path = env.path(f"xferlog-{uuid.uuid4().hex}")
    xferlog_after_one_upload(make_server, path)
    assert os.stat(path).st_mode & 0o777 == 0o640, oct(os.stat(path).st_mode)


def test_xferlog_created_with_its_directorys_group(make_server, env):
    """The first file takes its directory's group, as the files logrotate creates there do
    (root:adm 0750 /var/log/ftpsd): the log's readers see it before its first rotation."""
    d = env.path(f"xferlog-dir-{uuid.uuid4().hex}")
    os.makedirs(d)
    os.chown(d, 0, 54321)
    path = os.path.join(d, "xferlog")
    xferlog_after_one_upload(make_server, path)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 54321, 0o640), st


def test_xferlog_existing_file_keeps_its_mode(make_server, env):
    """A transfer log the admin made keeps the mode they gave it."""
    path = env.path(f"xferlog-{uuid.uuid4().hex}")
    open(path, "w").close()
    os.chmod(path, 0o600)
    xferlog_after_one_upload(make_server, path)
    assert os.stat(path).st_mode & 0o777 == 0o600, oct(os.stat(path).st_mode)


def test_xferlog_rotated_by_renaming(make_server, env):
    """ftpsd.conf(5): rotating by renaming needs no signal. A session open across the rename
    finishes in the renamed file; the next session creates the file anew."""
    path = env.path(f"xferlog-{uuid.uuid4().hex}")
    s = make_server(xferlog_file=path)
    open_across = s.ftps_reuse("alice")
    open_across.storbinary("STOR before-rotation.bin", io.BytesIO(b"x"))
    os.rename(path, path + ".1")
    open_across.storbinary("STOR during-rotation.bin", io.BytesIO(b"x"))
    open_across.quit()
    f = s.ftps_reuse("alice")
    f.storbinary("STOR after-rotation.bin", io.BytesIO(b"x"))
    f.quit()
    deadline = time.time() + 5
    while time.time() < deadline and not os.path.exists(path):
        time.sleep(0.05)
    old, new = open(path + ".1").read(), open(path).read()
    assert "before-rotation.bin" in old and "during-rotation.bin" in old, old
    assert "after-rotation.bin" in new, new
    assert "before-rotation.bin" not in new and "during-rotation.bin" not in new, new


def transfer_line(log, name):
    sid, mine = session_lines(log, f'RETR "/{name}"', "disconnect")
    m = re.search(rf'RETR "/{re.escape(name)}" bytes=(\d+) .* reply=(\d+)(?: reason=(.*))?$',
                  find(mine, rf'^RETR "/{re.escape(name)}" bytes=')["msg"])
    return int(m.group(1)), int(m.group(2)), m.group(3) or ""


def big_file(env, size):
    name = f"log-{uuid.uuid4().hex[:10]}.bin"
    path = os.path.join(env.home("alice"), name)
    with open(path, "wb") as fh:
        fh.write(os.urandom(size))
    return name, path


def start_retr(server, name):
    """A TLS session with a binary RETR of name started: (control, data connection)."""
    r = server.tls_raw("alice", prot=True, timeout=20)
    assert r.cmd("TYPE I")[0] == 200
    d = r.data_connect(r.cmd("EPSV")[1])
    r.send(f"RETR {name}\r\n".encode())
    assert r.reply()[0] == 150
    return r, d


def test_transfer_is_recorded_when_the_client_leaves(server, env, log):
    """A client that reads a whole download and resets the control connection before the 226:
    the transfer had no line at all (the front ended before logging it). Now it is recorded
    with the bytes the worker moved."""
    from reliability import rst_close
    size = 3 << 20
    name, path = big_file(env, size)
    try:
        r, d = start_retr(server, name)
        assert len(r.read_all(d)) == size
        rst_close(r.sock)
        bytes_, code, _ = transfer_line(log, name)
        assert bytes_ == size and code in (226, 426), (bytes_, code)
    finally:
        os.unlink(path)


def test_aborted_and_killed_transfers_are_recorded_as_failed(server, env, log):
    """ABOR: the record said reply=226 (the ABOR's own reply), so the xferlog marked the
    transfer complete; now 426, "aborted by ABOR". A data worker killed mid-download was
    recorded with bytes=0; now with what it had moved, shared with the front as it goes."""
    import signal
    from reliability import descendants, proc_stat
    size = 64 << 20
    name, path = big_file(env, size)
    try:
        r, d = start_retr(server, name)
        got = d.recv(65536)
        assert got
        assert r.cmd("ABOR")[0] == 426 and r.reply()[0] == 226
        d.close()
        r.close()
        bytes_, code, reason = transfer_line(log, name)
        assert code == 426 and reason == "aborted by ABOR", (code, reason)
    finally:
        os.unlink(path)
    name, path = big_file(env, size)
    try:
        before = set(descendants(server.proc.pid))
        r, d = start_retr(server, name)
        received = 0
        while received < 4 << 20:
            received += len(d.recv(65536))
        # The worker is the session's only process two levels below its monitor (a child of
        # the front). Not the highest new pid: pids wrap (pid_max may be 32768), and then the
        # newest process can have the lowest pid.
        new = {p: proc_stat(p) for p in descendants(server.proc.pid) if p not in before}
        workers = [p for p, st in new.items()
                   if st and st[0] in new and new[st[0]] and new[st[0]][0] in new]
        assert len(workers) == 1, new
        worker = workers[0]
        os.kill(worker, signal.SIGKILL)
        assert r.reply()[0] == 451
        d.close()
        r.close()
        bytes_, code, _ = transfer_line(log, name)
        assert code == 451 and bytes_ >= received - (2 << 20), (bytes_, received)
    finally:
        os.unlink(path)


def test_clnt_is_logged_once(server, log):
    """CLNT (FileZilla, WinSCP, lftp send it when FEAT lists it) names the client software in
    the log, once per session: repeating it cannot fill the log."""
    r = server.tls_raw()
    code, lines = r.cmd("FEAT")
    assert code == 211 and " CLNT" in lines, lines
    marker = f"client-{uuid.uuid4().hex[:10]}"
    assert r.cmd(f"CLNT {marker} 1.0") == (200, ["200 Noted."])
    assert r.cmd("CLNT other 2.0")[0] == 200
    assert r.cmd("CLNT")[0] == 501
    assert r.cmd("QUIT")[0] == 221
    r.close()
    sid, mine = session_lines(log, marker, "disconnect")
    find(mine, rf"^client software: {marker} 1\.0$")
    assert not [e for e in mine if "other 2.0" in e["msg"]], [e["line"] for e in mine]
