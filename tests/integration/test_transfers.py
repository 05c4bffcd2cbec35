"""Data transfers: RETR/STOR/APPE/REST, TYPE A and I, listings, passive mode, ABOR, interrupted
uploads, and real clients (curl, lftp). Rows B-12..B-58, X-09..X-14, X-19..X-23, N-01..N-09,
Y-01..Y-09, D-03..D-05, D-12..D-14, D-22, T-22/T-23, Z-01, Z-02, Z-07, Z-10 of the checklist.

Every test works in its own directory below the user's home, so the tests do not depend on
each other or on what other test files leave in the (session-wide) homes."""
import calendar
import ftplib
import glob
import hashlib
import io
import os
import re
import select
import socket
import ssl
import time

import pytest

from ftpsd_fixture import USERS, bio_handshake, connect_from_elsewhere, port_below_ephemeral_range

TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3
TLS_VERSIONS = pytest.mark.parametrize("tls", [TLS13, TLS12], ids=["tls13", "tls12"])
# Names in the users' homes carry this run's tag: the homes and /dev/log may be shared with
# another test session running at the same time.
RUN = os.urandom(3).hex()
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
PASV_RE = re.compile(r"^227 Entering Passive Mode \((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)\.$")
EPSV_RE = re.compile(r"^229 Entering Extended Passive Mode \(\|\|\|(\d+)\|\)$")
# ls -l: mode, nlink, owner, group, size, month, day, time or year, then one space and the name
LS_RE = re.compile(r"^([-dlcbps][-rwxsStT]{9}) +(\d+) +(\S+) +(\S+) +(\d+) +([A-Z][a-z]{2}) "
                   r"+(\d{1,2}) +(\d{2}:\d{2}|\d{4}) (.+)$")


# --- helpers ---------------------------------------------------------------------------------

def sha(b):
    return hashlib.sha256(b).hexdigest()


def uid(user):
    return USERS[user][0]


def put_file(path, data, user="alice"):
    with open(path, "wb") as fh:
        fh.write(data)
    os.chown(path, uid(user), uid(user))
    return path


def read_file(path):
    with open(path, "rb") as fh:
        return fh.read()


def make_dir(env, user, name):
    path = os.path.join(env.home(user), name)
    os.mkdir(path)
    os.chown(path, uid(user), uid(user))
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def wd(env, request):
    """(name, local path) of a fresh directory in alice's home for this test."""
    name = "xfer_" + re.sub(r"\W", "_", request.node.name)[:80] + "_" + RUN
    return name, make_dir(env, "alice", name)


def client(server, user="alice", tls=None, reuse=True, prot_p=True, cwd=None):
    """A logged-in FTP_TLS client; reuse=True resumes the control session on data connections."""
    f = server.ftps_reuse(None) if reuse else server.ftps(None)
    if tls is not None:
        f.context.minimum_version = tls
        f.context.maximum_version = tls
    f.login(user, USERS[user][1])
    if tls is not None:
        assert f.sock.version() == {TLS12: "TLSv1.2", TLS13: "TLSv1.3"}[tls]
    if prot_p:
        f.prot_p()
    if cwd:
        f.cwd(cwd)
    return f


def retr(f, cmd, type_="I", rest=None):
    """Runs a download command; returns (bytes exactly as received, final reply)."""
    f.voidcmd("TYPE " + type_)
    buf = bytearray()
    with f.transfercmd(cmd, rest) as conn:
        assert f.lastresp == "150"
        while True:
            d = conn.recv(65536)
            if not d:
                break
            buf += d
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
    resp = f.voidresp()
    return bytes(buf), resp


def stor(f, cmd, data, type_="I", rest=None, chunks=None):
    """Runs an upload command; returns the final reply. chunks: a list of byte strings sent
    with separate sendall calls (separate TLS records)."""
    f.voidcmd("TYPE " + type_)
    with f.transfercmd(cmd, rest) as conn:
        assert f.lastresp == "150"
        for c in (chunks if chunks is not None else [data]):
            conn.sendall(c)
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
    return f.voidresp()


def lines_of(data):
    text = data.decode("utf-8", "surrogateescape")
    assert text == "" or text.endswith("\r\n"), repr(text[-40:])
    out = text.split("\r\n")[:-1]
    assert all("\n" not in l and "\r" not in l for l in out), out
    return out


def parse_mlsd(line):
    facts, name = line.split(" ", 1)
    assert facts.endswith(";"), line
    d = {}
    for fact in facts[:-1].split(";"):
        k, v = fact.split("=", 1)
        d[k.lower()] = v
    return d, name


def parts(path):
    return glob.glob(os.path.join(path, ".ftpsd-*.part"))


def wait_until(pred, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def read_all(sock, limit_s=10):
    """Reads a socket until EOF or an error; returns the bytes."""
    sock.settimeout(limit_s)
    got = b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                break
            got += d
    except (OSError, ssl.SSLError):
        pass
    return got


def hard_close(sock):
    """Closes a (TLS) socket without close_notify: a plain TCP shutdown and close."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def curl_ok(server, *args):
    """Runs curl (through the fixture) and fails with its error output if it fails."""
    r = server.curl(*args, check=False)
    assert r.returncode == 0, (r.returncode, r.stderr.decode(errors="replace"))
    return r


def log_text(syslog, wait_for=None, timeout=5):
    if syslog is None or not syslog.available:
        return None
    return syslog.text(wait_for=wait_for, timeout=timeout)


# --- 1. round trip and listings --------------------------------------------------------------

@TLS_VERSIONS
def test_stor_retr_roundtrip_3mb(server, env, wd, tls):
    """B-24, B-20, D-03: a resuming client stores and fetches 3 MB of random bytes."""
    name, path = wd
    data = os.urandom(3 * 1024 * 1024 + 123)
    f = client(server, tls=tls, cwd=name)
    resp = stor(f, "STOR rand.bin", data)
    assert resp.startswith("226 "), resp
    on_disk = os.path.join(path, "rand.bin")
    assert os.path.getsize(on_disk) == len(data)
    assert sha(read_file(on_disk)) == sha(data)
    assert os.stat(on_disk).st_uid == uid("alice")
    assert f.sendcmd("SIZE rand.bin") == f"213 {len(data)}"
    got, resp = retr(f, "RETR rand.bin")
    assert resp.startswith("226 "), resp
    assert len(got) == len(data) and sha(got) == sha(data)
    assert parts(path) == []
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()


def test_retr_150_announces_size(server, wd):
    """D-20: '150 Opening BINARY mode data connection for <file> (<n> bytes).'"""
    name, path = wd
    put_file(os.path.join(path, "s.bin"), b"x" * 1234)
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("RETR s.bin")
    resp150 = f.lastresp
    conn.recv(10)
    read_all(conn)
    conn.close()
    assert f.voidresp().startswith("226")
    assert resp150 == "150"
    f.quit()


def _listing_tree(path):
    now = time.time()
    put_file(os.path.join(path, "a.txt"), b"hello\n")
    put_file(os.path.join(path, "with space.bin"), os.urandom(5000))
    old = put_file(os.path.join(path, "old.dat"), b"0123456789")
    os.utime(old, (now, calendar.timegm((2020, 1, 2, 3, 4, 5))))
    sub = os.path.join(path, "sub")
    os.mkdir(sub)
    os.chown(sub, uid("alice"), uid("alice"))
    put_file(os.path.join(path, ".hidden"), b"h")
    return ["a.txt", "old.dat", "sub", "with space.bin"]


def test_list_ls_format(server, wd):
    """Y-01..Y-03, Y-06, Y-08, B-44: LIST lines in ls -l form with UTC dates."""
    name, path = wd
    visible = _listing_tree(path)
    f = client(server, cwd=name)
    data, resp = retr(f, "LIST", type_="A")
    assert resp.startswith("226 "), resp
    lines = lines_of(data)
    assert not any(l.startswith("total") for l in lines), lines
    seen = {}
    for l in lines:
        m = LS_RE.match(l)
        assert m, f"not an ls -l line: {l!r}"
        seen[m.group(9)] = m
    assert sorted(seen) == visible, lines          # .hidden not shown without -a
    for n, m in seen.items():
        st = os.lstat(os.path.join(path, n))
        mode, nlink, owner, group, size, mon, day, tm, _ = m.groups()
        assert mode[0] == ("d" if n == "sub" else "-")
        assert mode[1:] == {0o644: "rw-r--r--", 0o755: "rwxr-xr-x"}[st.st_mode & 0o777]
        assert int(nlink) == st.st_nlink
        assert owner == "alice" and group == "alice", l
        assert int(size) == st.st_size
        t = time.gmtime(st.st_mtime)
        assert mon == MONTHS[t.tm_mon - 1] and int(day) == t.tm_mday, (n, l)
        if n == "old.dat":
            assert tm == "2020", tm
        else:
            assert tm == "%02d:%02d" % (t.tm_hour, t.tm_min), (n, tm)
    # Y-04: ls options; Y-07: a single file
    data, _ = retr(f, "LIST -la", type_="A")
    assert ".hidden" in [LS_RE.match(l).group(9) for l in lines_of(data) if LS_RE.match(l)]
    data, _ = retr(f, "LIST a.txt", type_="A")
    one = lines_of(data)
    assert len(one) == 1 and one[0].endswith(" a.txt") and LS_RE.match(one[0])
    # listings are CRLF even in TYPE I (Y-08)
    data_i, _ = retr(f, "LIST", type_="I")
    assert [LS_RE.match(l).group(9) for l in lines_of(data_i)] == visible
    f.quit()


def test_list_names_that_start_with_a_dash(server, wd):
    """Y-04: leading "-la" words are options, but a word naming an existing entry is a name,
    and "--" ends the options; "LIST -dashdir" listed the working directory instead."""
    name, path = wd
    os.mkdir(os.path.join(path, "-dashdir"))
    put_file(os.path.join(path, "-dashdir", "in.txt"), b"i")
    put_file(os.path.join(path, "-file"), b"f")
    put_file(os.path.join(path, ".hidden"), b"h")
    f = client(server, cwd=name)
    assert f.nlst("-dashdir") == ["-dashdir/in.txt"]
    data, _ = retr(f, "LIST -dashdir", type_="A")
    assert [l.split()[-1] for l in lines_of(data)] == ["in.txt"]
    data, _ = retr(f, "LIST -file", type_="A")
    assert [l.split()[-1] for l in lines_of(data)] == ["-file"]
    data, _ = retr(f, "LIST -la -- -dashdir", type_="A")
    assert sorted(l.split()[-1] for l in lines_of(data)) == [".", "..", "in.txt"]
    data, _ = retr(f, "LIST -a", type_="A")
    assert ".hidden" in [l.split()[-1] for l in lines_of(data)]
    f.quit()


def test_list_d_lists_the_directory_itself(server, wd):
    """ls -d: "LIST -d dir" is one line for dir, not its contents; "LIST -ld" the working
    directory as "."; a file is listed as ever. A directory named like the option is a name."""
    name, path = wd
    os.mkdir(os.path.join(path, "sub"))
    put_file(os.path.join(path, "sub", "inside.txt"), b"i")
    put_file(os.path.join(path, "f.txt"), b"f")
    f = client(server, cwd=name)
    data, _ = retr(f, "LIST -d sub", type_="A")
    one = lines_of(data)
    assert len(one) == 1 and one[0].startswith("d") and one[0].endswith(" sub"), one
    data, _ = retr(f, "LIST -ld", type_="A")
    one = lines_of(data)
    assert len(one) == 1 and one[0].startswith("d") and one[0].endswith(" ."), one
    data, _ = retr(f, "LIST -d f.txt", type_="A")
    assert [l.split()[-1] for l in lines_of(data)] == ["f.txt"]
    assert f.nlst("-d", "sub") == ["sub"]
    os.mkdir(os.path.join(path, "-d"))
    put_file(os.path.join(path, "-d", "x"), b"x")
    data, _ = retr(f, "LIST -d", type_="A")
    assert [l.split()[-1] for l in lines_of(data)] == ["x"]
    f.quit()


def test_list_of_a_symlink_shows_the_link(server, wd):
    """LIST of a symlink names the link and its target, as ls -l does, also when it leads
    nowhere (dangling, a loop), which used to get 550."""
    name, path = wd
    put_file(os.path.join(path, "real.txt"), b"r")
    os.symlink("real.txt", os.path.join(path, "to-real"))
    os.symlink("/nowhere/at/all", os.path.join(path, "dangling"))
    os.symlink("loop2", os.path.join(path, "loop1"))
    os.symlink("loop1", os.path.join(path, "loop2"))
    f = client(server, cwd=name)
    for link, target in (("to-real", "real.txt"), ("dangling", "/nowhere/at/all"),
                         ("loop1", "loop2")):
        data, resp = retr(f, "LIST " + link, type_="A")
        assert resp.startswith("226"), resp
        (line,) = lines_of(data)
        assert line.startswith("l") and line.endswith(f" {link} -> {target}"), line
    with pytest.raises(ftplib.error_perm, match="^550 "):
        retr(f, "LIST missing", type_="A")
    f.quit()


def test_nlst_names_only(server, wd):
    """B-45, Y-09: NLST gives bare names, one per CRLF line, usable with RETR."""
    name, path = wd
    visible = _listing_tree(path)
    f = client(server, cwd=name)
    data, resp = retr(f, "NLST", type_="A")
    assert resp.startswith("226 "), resp
    assert sorted(lines_of(data)) == visible
    got, _ = retr(f, "RETR " + "with space.bin")
    assert got == read_file(os.path.join(path, "with space.bin"))
    # empty directory: 150, no data, 226 (B-46, recommended)
    data, resp = retr(f, "NLST sub", type_="A")
    assert data == b"" and resp.startswith("226"), (data, resp)
    f.quit()


def test_mlsd_facts(server, wd):
    """X-19..X-23: MLSD lines with type/size/modify/perm/unique facts."""
    name, path = wd
    visible = _listing_tree(path)
    f = client(server, cwd=name)
    data, resp = retr(f, "MLSD", type_="A")
    assert resp.startswith("226 "), resp
    entries = {}
    for l in lines_of(data):
        facts, n = parse_mlsd(l)
        assert "/" not in n, l
        entries[n] = facts
    assert entries["."]["type"] == "cdir"
    assert ".hidden" in entries
    assert set(visible) <= set(entries)
    uniques = set()
    for n in visible + [".hidden"]:
        facts = entries[n]
        st = os.lstat(os.path.join(path, n))
        for k in ("type", "modify", "perm", "unique"):
            assert k in facts, (n, facts)
        if n == "sub":
            assert facts["type"] == "dir"
            assert set(facts["perm"]) >= set("cdeflmp"), facts
        else:
            assert facts["type"] == "file"
            assert int(facts["size"]) == st.st_size
            assert set(facts["perm"]) >= set("adfrw"), facts   # alice's file, writable dir
            assert set(facts["perm"]) <= set("adfrw"), facts
        assert facts["modify"] == time.strftime("%Y%m%d%H%M%S", time.gmtime(st.st_mtime))
        uniques.add(facts["unique"])
    assert len(uniques) == len(visible) + 1
    assert entries["old.dat"]["modify"] == "20200102030405"
    # MLSD of a file -> 501 before any 1xx
    with pytest.raises(ftplib.error_perm, match=r"^501"):
        retr(f, "MLSD a.txt")
    f.quit()


def test_listing_large_directory(server, wd):
    """LIST, NLST and MLSD of a directory with 300 entries (sorted, complete); the session
    survives."""
    name, path = wd
    names = [f"entry_with_a_long_name_{i:04d}.dat" for i in range(300)]
    for n in names:
        put_file(os.path.join(path, n), n.encode())
    f = client(server, cwd=name)
    data, resp = retr(f, "NLST", type_="A")
    assert resp.startswith("226") and lines_of(data) == names
    data, resp = retr(f, "LIST", type_="A")
    assert resp.startswith("226")
    assert [LS_RE.match(l).group(9) for l in lines_of(data)] == names
    data, resp = retr(f, "MLSD", type_="A")
    assert resp.startswith("226")
    assert sorted(parse_mlsd(l)[1] for l in lines_of(data)) == sorted(names + ["."])
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()


# --- 2. TYPE A and TYPE I --------------------------------------------------------------------

def test_type_a_retr_converts_lf(server, wd):
    """B-57: bare LF on disk goes out as CRLF in TYPE A."""
    name, path = wd
    text = b"line1\nline2\n\nlast line without newline"
    put_file(os.path.join(path, "t.txt"), text)
    big = b"".join(b"row %06d\n" % i for i in range(60000))   # crosses the 256 KiB buffer
    put_file(os.path.join(path, "big.txt"), big)
    f = client(server, cwd=name)
    got, resp = retr(f, "RETR t.txt", type_="A")
    assert resp.startswith("226"), resp
    assert got == b"line1\r\nline2\r\n\r\nlast line without newline"
    assert f.sendcmd("TYPE A") == "200 Switching to ASCII mode."
    got, _ = retr(f, "RETR big.txt", type_="A")
    assert got == big.replace(b"\n", b"\r\n")
    # the same file in TYPE I is unchanged
    got, _ = retr(f, "RETR t.txt", type_="I")
    assert got == text
    # A restart between the CR and LF of the file's own CRLF: the LF goes out alone (the CR
    # went with the first part), and "\r\n" stays one line end; it used to gain a CR.
    put_file(os.path.join(path, "crlf.txt"), b"one\r\ntwo\n")
    first, _ = retr(f, "RETR crlf.txt", type_="A")
    assert first == b"one\r\ntwo\r\n"
    got, _ = retr(f, "RETR crlf.txt", type_="A", rest=4)
    assert got == b"\ntwo\r\n"
    assert first[:4] + got == first
    f.quit()


def test_type_a_restart_counts_the_converted_stream(server, wd):
    """RFC 3659 §5: in TYPE A a REST offset counts the data as sent, after the LF -> CRLF
    conversion. It was used as a file offset: a client resuming "ab\r\ncd\r\n" (8 bytes)
    got "\r\n" and lost the "ef" line. Every offset now gives the rest of the converted stream,
    one between a CR the conversion added and its LF included; past the end fails. An upload
    cannot be restarted in TYPE A (the file does not show whether a LF came as CR LF): 554
    before any data, the file untouched."""
    name, path = wd
    put_file(os.path.join(path, "lf.txt"), b"ab\ncd\nef\n")
    stream = b"ab\r\ncd\r\nef\r\n"
    f = client(server, cwd=name)
    for k in range(len(stream) + 1):
        got, resp = retr(f, "RETR lf.txt", type_="A", rest=k)
        assert resp.startswith("226"), (k, resp)
        assert got == stream[k:], k
    with pytest.raises(ftplib.error_temp, match="^451 .*past the end"):
        retr(f, "RETR lf.txt", type_="A", rest=len(stream) + 1)
    assert f.sendcmd("TYPE A").startswith("200")
    assert f.sendcmd("REST 2").startswith("350")
    with pytest.raises(ftplib.error_perm, match="^554 .*ASCII mode"):
        f.transfercmd("STOR lf.txt")
    assert read_file(os.path.join(path, "lf.txt")) == b"ab\ncd\nef\n"
    assert f.sendcmd("NOOP").startswith("200")
    f.quit()


def test_type_a_stor_converts_crlf(server, wd):
    """B-58: CRLF on the data connection is stored as LF in TYPE A, also when a CR and its LF
    arrive in different TLS records."""
    name, path = wd
    f = client(server, cwd=name)
    resp = stor(f, "STOR up.txt", None, type_="A",
                chunks=[b"one\r\ntwo\r", b"\nthree\r\n", b"four"])
    assert resp.startswith("226"), resp
    assert read_file(os.path.join(path, "up.txt")) == b"one\ntwo\nthree\nfour"
    big = b"".join(b"row %06d\r\n" % i for i in range(60000))
    assert stor(f, "STOR big.txt", big, type_="A").startswith("226")
    assert read_file(os.path.join(path, "big.txt")) == big.replace(b"\r\n", b"\n")
    f.quit()


def test_type_i_keeps_bytes(server, wd):
    """B-58: TYPE I keeps every byte (lone CR, CRLF, LF, NUL, 0xFF)."""
    name, path = wd
    data = b"a\rb\r\nc\nd\n\r\x00\xff\r" + os.urandom(100000) + b"\r\n\r\r\n\n"
    f = client(server, cwd=name)
    assert stor(f, "STOR bin.dat", data, type_="I").startswith("226")
    assert read_file(os.path.join(path, "bin.dat")) == data
    got, _ = retr(f, "RETR bin.dat", type_="I")
    assert got == data
    assert f.sendcmd("TYPE L 8").startswith("200")
    got, _ = retr(f, "RETR bin.dat", type_="L 8")
    assert got == data
    f.quit()


# --- 3. REST, APPE ---------------------------------------------------------------------------

def test_rest_retr(server, wd):
    """X-09, X-12: REST n then RETR sends from byte n; REST 0 cancels."""
    name, path = wd
    data = os.urandom(200000)
    put_file(os.path.join(path, "r.bin"), data)
    f = client(server, cwd=name)
    got, resp = retr(f, "RETR r.bin", rest=100)
    assert resp.startswith("226"), resp
    assert got == data[100:]
    got, _ = retr(f, "RETR r.bin", rest=len(data))      # exactly at EOF: nothing, but 226
    assert got == b""
    got, _ = retr(f, "RETR r.bin", rest=0)
    assert got == data
    # REST applies to the next transfer only
    assert f.sendcmd("REST 500").startswith("350")
    got, _ = retr(f, "RETR r.bin", rest=None)
    assert got == data[500:]
    got, _ = retr(f, "RETR r.bin")
    assert got == data
    f.quit()


def test_rest_beyond_eof_retr_554(server, wd):
    """X-11: REST beyond EOF is accepted (350); RETR answers 554 with no 150 and no data."""
    name, path = wd
    put_file(os.path.join(path, "r.bin"), b"x" * 1000)
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    assert f.sendcmd("PASV").startswith("227")
    assert f.sendcmd("REST 1001").startswith("350")
    with pytest.raises(ftplib.error_perm) as ei:
        f.sendcmd("RETR r.bin")              # the first reply to RETR is the error itself
    assert str(ei.value).startswith("554 "), ei.value
    # the same through ftplib's transfer path (it connects to the PASV port first)
    with pytest.raises(ftplib.error_perm, match=r"^554 "):
        retr(f, "RETR r.bin", rest=5000)
    assert f.voidcmd("NOOP").startswith("200")
    got, _ = retr(f, "RETR r.bin")
    assert got == b"x" * 1000
    f.quit()


def test_rest_stor_resumes(server, wd):
    """X-13: REST n + STOR keeps bytes 0..n-1, writes from n, and the file ends at n+sent."""
    name, path = wd
    orig = os.urandom(10000)
    target = put_file(os.path.join(path, "part.bin"), orig)
    new = os.urandom(3000)
    f = client(server, cwd=name)
    resp = stor(f, "STOR part.bin", new, rest=4000)
    assert resp.startswith("226"), resp
    assert read_file(target) == orig[:4000] + new
    # resuming at the exact end extends the file
    more = os.urandom(500)
    assert stor(f, "STOR part.bin", more, rest=7000).startswith("226")
    assert read_file(target) == orig[:4000] + new + more
    # REST beyond EOF then STOR: 554, no 150, file unchanged
    with pytest.raises(ftplib.error_perm, match=r"^554 "):
        stor(f, "STOR part.bin", b"zzz", rest=999999)
    assert read_file(target) == orig[:4000] + new + more
    assert parts(path) == []
    f.quit()


def test_appe(server, wd):
    """B-28, B-29: APPE appends to an existing file and creates a new one."""
    name, path = wd
    first = os.urandom(5000)
    target = put_file(os.path.join(path, "log.bin"), first)
    second = os.urandom(7000)
    f = client(server, cwd=name)
    assert stor(f, "APPE log.bin", second).startswith("226")
    assert read_file(target) == first + second
    fresh = os.urandom(1234)
    assert stor(f, "APPE new.bin", fresh).startswith("226")
    assert read_file(os.path.join(path, "new.bin")) == fresh
    assert stor(f, "APPE new.bin", b"tail").startswith("226")
    assert read_file(os.path.join(path, "new.bin")) == fresh + b"tail"
    assert parts(path) == []
    f.quit()


# --- 4. PROT policy --------------------------------------------------------------------------

@pytest.mark.parametrize("prot", [None, "C"], ids=["no-prot", "prot-c"])
@pytest.mark.parametrize("cmd", ["RETR f.bin", "STOR n.bin", "APPE n.bin", "LIST", "NLST",
                                 "MLSD"])
def test_prot_c_refused_522_before_150(server, wd, prot, cmd):
    """T-22: a transfer under PROT C (or without PROT) gets 522 as its first reply."""
    name, path = wd
    put_file(os.path.join(path, "f.bin"), b"secret data")
    f = client(server, prot_p=False, cwd=name)
    if prot:
        assert f.sendcmd("PBSZ 0").startswith("200")
        assert f.sendcmd("PROT " + prot).startswith("200")
    assert PASV_RE.match(f.sendcmd("PASV"))
    with pytest.raises(ftplib.error_perm) as ei:
        f.sendcmd(cmd)
    assert str(ei.value).startswith("522 "), ei.value
    assert not os.path.exists(os.path.join(path, "n.bin"))
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()


def test_prot_c_refused_then_prot_p_works(server, wd):
    """T-23: after the 522 refusal, PROT P and the same transfer succeeds."""
    name, path = wd
    data = os.urandom(50000)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(server, prot_p=False, cwd=name)
    with pytest.raises(ftplib.error_perm, match=r"^522 "):
        retr(f, "RETR f.bin")
    f.prot_p()
    got, resp = retr(f, "RETR f.bin")
    assert resp.startswith("226") and got == data
    f.prot_c()
    with pytest.raises(ftplib.error_perm, match=r"^522 "):
        retr(f, "RETR f.bin")
    f.quit()


def test_prot_c_allowed_by_config(make_server, env, wd):
    """require_prot_p = no: PROT C transfers run in plaintext."""
    name, path = wd
    s = make_server(require_prot_p="no")
    data = os.urandom(300000) + b"\r\n\n\r"
    put_file(os.path.join(path, "plain.bin"), data)
    f = client(s, prot_p=False, cwd=name)
    got, resp = retr(f, "RETR plain.bin")   # the data socket is not wrapped: raw bytes
    assert resp.startswith("226"), resp
    assert sha(got) == sha(data)
    assert stor(f, "STOR up.bin", data).startswith("226")
    assert sha(read_file(os.path.join(path, "up.bin"))) == sha(data)
    listing, _ = retr(f, "NLST", type_="A")
    assert sorted(lines_of(listing)) == ["plain.bin", "up.bin"]
    # explicit PBSZ 0 / PROT C, then back to P: both work
    f.sendcmd("PBSZ 0")
    f.prot_c()
    got, _ = retr(f, "RETR plain.bin")
    assert got == data
    f.prot_p()
    got, _ = retr(f, "RETR plain.bin")
    assert got == data
    f.quit()


def test_appe_under_prot_c(make_server, wd):
    """APPE in clear binary mode: uploads go from the socket to the file with splice(2), which
    Linux refuses for a file opened O_APPEND, so every APPE under PROT C failed with 451
    ("Invalid argument"; curl --append too). An APPE that ends with nothing received leaves
    no file where there was none (an empty one stayed, and the reply said "left as it was")."""
    name, path = wd
    s = make_server(require_prot_p="no")
    put_file(os.path.join(path, "log.txt"), b"first\n")
    f = client(s, prot_p=False, cwd=name)
    assert stor(f, "APPE log.txt", b"second\n" * 20000).startswith("226")
    assert read_file(os.path.join(path, "log.txt")) == b"first\n" + b"second\n" * 20000
    assert stor(f, "APPE new.txt", b"new\n").startswith("226")
    assert read_file(os.path.join(path, "new.txt")) == b"new\n"
    r = s.tls_raw("alice")
    assert r.cmd("PBSZ 0")[0] == 200 and r.cmd("PROT C")[0] == 200
    assert r.cmd(f"CWD {name}")[0] == 250 and r.cmd("TYPE I")[0] == 200
    code, lines = r.cmd("EPSV")
    r.send("APPE never.txt\r\n")
    code, lines = r.reply()
    assert code == 150, lines
    assert r.cmd("ABOR")[0] == 426 and r.reply()[0] == 226
    assert not os.path.exists(os.path.join(path, "never.txt"))
    r.close()
    f.quit()


def test_data_connection_timing(make_server, wd):
    """data_timeout counts from the transfer command. Connections from another address to the
    passive port (each refused) restarted the wait, so a stream of them held the session for
    ever. A TLS data connection made before the command started its handshake timer at once:
    a client that handshakes after the 150 got 522 when the command came more than
    data_timeout later; and after PROT C, the worker waited data_timeout for a handshake
    that never comes before saying 425."""
    name, path = wd
    put_file(os.path.join(path, "f.bin"), b"data" * 1000)
    s = make_server(data_timeout=2, require_prot_p="no")
    # intruders every second: 425 still comes about data_timeout after the 150
    r = s.tls_raw("alice", prot=True, timeout=20)
    assert r.cmd(f"CWD {name}")[0] == 250
    port = int(re.search(r"\|\|\|(\d+)\|", r.cmd("EPSV")[1][0]).group(1))
    r.send("RETR f.bin\r\n")
    assert r.reply()[0] == 150
    start = time.time()
    stop = start + 6
    while time.time() < stop:
        try:
            c = socket.create_connection((s.host, port), timeout=2, source_address=("127.0.0.2", 0))
            c.close()
        except OSError:
            pass
        r.sock.settimeout(0.01)
        try:
            got = r.sock.recv(4096)
        except (socket.timeout, ssl.SSLWantReadError, TimeoutError):
            got = b""
        r.sock.settimeout(20)
        if got:
            break
        # The next intruder a second later, but the reply as soon as it comes: a fixed sleep
        # saw a 425 at 2 s only at about 3 s, of the 4.5 s allowed.
        select.select([r.sock], [], [], 1)
    else:
        got = b""
    assert got.startswith(b"425"), got
    assert time.time() - start < 4.5
    r.close()
    # a TLS data connection made early, its handshake only after the 150, 3 s later
    r = s.tls_raw("alice", prot=True, timeout=20)
    assert r.cmd(f"CWD {name}")[0] == 250 and r.cmd("TYPE I")[0] == 200
    d = socket.create_connection((s.host, int(re.search(r"\|\|\|(\d+)\|",
                                                         r.cmd("EPSV")[1][0]).group(1))))
    time.sleep(3)
    r.send("RETR f.bin\r\n")
    assert r.reply()[0] == 150
    d = r.ctx.wrap_socket(d, server_hostname="localhost", session=r.sock.session)
    assert r.read_all(d) == b"data" * 1000
    assert r.reply()[0] == 226
    # connected under PROT P, then PROT C: 425 at once
    d = socket.create_connection((s.host, int(re.search(r"\|\|\|(\d+)\|",
                                                         r.cmd("EPSV")[1][0]).group(1))))
    assert r.cmd("PROT C")[0] == 200
    start = time.time()
    r.send("RETR f.bin\r\n")
    assert r.reply()[0] == 150
    code, lines = r.reply()
    assert code == 425 and "PROT C" in lines[0], lines
    assert time.time() - start < 1.5
    d.close()
    r.close()


# --- 5. session reuse ------------------------------------------------------------------------

def test_no_resumption_gets_522(server, wd):
    """D-01, T-21: plain ftplib (full handshake on data) gets 150 then 522; control survives."""
    name, path = wd
    put_file(os.path.join(path, "f.bin"), os.urandom(100000))
    f = client(server, reuse=False, cwd=name)
    with pytest.raises(ftplib.error_perm) as ei:
        f.retrbinary("RETR f.bin", lambda b: None)
    assert str(ei.value).startswith("522 "), ei.value
    assert f.voidcmd("NOOP") == "200 NOOP ok."
    # an upload is refused the same way and leaves nothing behind
    with pytest.raises(ftplib.error_perm, match=r"^522 "):
        f.storbinary("STOR up.bin", io.BytesIO(os.urandom(100000)))
    assert f.voidcmd("NOOP").startswith("200")
    assert not os.path.exists(os.path.join(path, "up.bin"))
    assert wait_until(lambda: parts(path) == [])
    with pytest.raises(ftplib.error_perm, match=r"^522 "):
        f.retrlines("LIST", lambda l: None)
    f.quit()


@TLS_VERSIONS
def test_no_resumption_then_resumption_works(server, wd, tls):
    """Z-09: after a 522, a data connection that resumes succeeds on the same control conn."""
    name, path = wd
    data = os.urandom(20000)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(server, tls=tls, cwd=name)
    plain_ntransfercmd = ftplib.FTP_TLS.ntransfercmd
    with pytest.raises(ftplib.error_perm, match=r"^522 "):
        f.voidcmd("TYPE I")
        conn, _ = plain_ntransfercmd(f, "RETR f.bin")   # full handshake
        read_all(conn)
        conn.close()
        f.voidresp()
    got, resp = retr(f, "RETR f.bin")
    assert got == data and resp.startswith("226")
    f.quit()


def test_session_reuse_not_required(make_server, wd):
    """D-02: with require_session_reuse = no, plain ftplib transfers work."""
    name, path = wd
    s = make_server(require_session_reuse="no")
    data = os.urandom(400000)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(s, reuse=False, cwd=name)
    buf = bytearray()
    assert f.retrbinary("RETR f.bin", buf.extend).startswith("226")
    assert bytes(buf) == data
    assert f.storbinary("STOR up.bin", io.BytesIO(data)).startswith("226")
    assert read_file(os.path.join(path, "up.bin")) == data
    names = f.nlst()
    assert sorted(names) == ["f.bin", "up.bin"]
    f.quit()
    # resuming clients still work
    f = client(s, cwd=name)
    got, _ = retr(f, "RETR f.bin")
    assert got == data
    f.quit()


# --- 6. session binding: another user's resumed session -------------------------------------

@TLS_VERSIONS
def test_data_connection_hijack_by_other_user_refused(server, env, tls):
    """D-09/D-10, K-10: bob connects to alice's passive port, resuming HIS control session;
    alice's RETR gets 150 then 522 and bob receives none of the file."""
    secret = b"ALICE-SECRET-" + os.urandom(200000)
    sdir = make_dir(env, "alice", f"hijack_{tls.name}_{RUN}")
    put_file(os.path.join(sdir, "secret.bin"), secret)
    victim = client(server, "alice", tls=tls, cwd=os.path.basename(sdir))
    attacker = client(server, "bob", tls=tls)
    victim.voidcmd("TYPE I")
    m = PASV_RE.match(victim.sendcmd("PASV"))
    assert m, victim.lastresp
    port = int(m.group(5)) * 256 + int(m.group(6))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    stolen = b""
    try:
        tconn = attacker.context.wrap_socket(raw, server_hostname="localhost",
                                             session=attacker.sock.session)
        assert not tconn.session_reused
        resp = victim.sendcmd("RETR secret.bin")
        assert resp.startswith("150 "), resp
        stolen = read_all(tconn)
        tconn.close()
    except (ssl.SSLError, OSError):
        # The server may also refuse the handshake itself; then the victim must still not
        # get the file to anyone.
        raw.close()
        resp = victim.sendcmd("RETR secret.bin")
        assert resp.startswith("150 "), resp
    assert stolen == b"", len(stolen)
    with pytest.raises(ftplib.error_perm) as ei:
        victim.getresp()
    assert str(ei.value).startswith("522 "), ei.value
    # both sessions are still usable, and the victim's next (resumed) transfer works
    assert victim.voidcmd("NOOP").startswith("200")
    got, resp = retr(victim, "RETR secret.bin")
    assert got == secret and resp.startswith("226")
    assert attacker.voidcmd("NOOP").startswith("200")
    victim.quit()
    attacker.quit()


def test_data_connection_hijack_upload_refused(server, env):
    """The same attack against an upload: the attacker's bytes are not stored."""
    sdir = make_dir(env, "alice", f"hijack_upload_{RUN}")
    victim = client(server, "alice", cwd=os.path.basename(sdir))
    attacker = client(server, "bob")
    victim.voidcmd("TYPE I")
    port = ftplib.parse227(victim.sendcmd("PASV"))[1]
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    tconn = attacker.context.wrap_socket(raw, server_hostname="localhost",
                                         session=attacker.sock.session)
    assert victim.sendcmd("STOR planted.bin").startswith("150 ")
    try:
        tconn.sendall(b"EVIL" * 10000)
        tconn.unwrap()
    except (ssl.SSLError, OSError):
        pass
    tconn.close()
    with pytest.raises(ftplib.error_perm, match=r"^522 "):
        victim.getresp()
    assert not os.path.exists(os.path.join(sdir, "planted.bin"))
    assert wait_until(lambda: parts(sdir) == [])
    victim.quit()
    attacker.quit()


# --- 7. port stealing ------------------------------------------------------------------------

def test_port_stealing_from_other_address(server, wd, syslog):
    """K-03, N-05: a connection to the passive port from 127.0.0.2 is closed without data; the
    client's own connection then gets the file."""
    name, path = wd
    data = os.urandom(100000)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(server, cwd=name)
    thief_got = {}
    orig = f.makepasv

    def makepasv():
        host, port = orig()
        thief = socket.socket()
        thief.bind(("127.0.0.2", 0))
        thief.settimeout(10)
        thief.connect(("127.0.0.1", port))
        thief.sendall(b"\x16\x03\x01")           # whatever it sends is never answered
        thief_got["data"] = read_all(thief, 5)
        thief.close()
        return host, port

    f.makepasv = makepasv
    got, resp = retr(f, "RETR f.bin")
    assert thief_got["data"] == b""
    assert resp.startswith("226") and got == data
    f.quit()
    log = log_text(syslog, wait_for="127.0.0.2 refused")
    if log is not None:
        assert "data connection from 127.0.0.2 refused" in log


# --- 8. PASV / EPSV --------------------------------------------------------------------------

def test_pasv_reply_format_and_range(server, wd):
    """B-12, N-02, N-04: 227 with the control connection's local address, port in range,
    random."""
    name, path = wd
    f = client(server, cwd=name)
    ports = set()
    for _ in range(5):
        m = PASV_RE.match(f.sendcmd("PASV"))
        assert m, f.lastresp
        assert m.groups()[:4] == ("127", "0", "0", "1")
        port = int(m.group(5)) * 256 + int(m.group(6))
        assert 40000 <= port <= 44999
        ports.add(port)
    assert len(ports) >= 2, ports                    # not the same port every time
    f.quit()


def test_pasv_twice_only_last_valid(server, wd):
    """B-15, N-06: a second PASV closes the first listener."""
    name, path = wd
    data = b"second"
    put_file(os.path.join(path, "f.bin"), data)
    f = client(server, cwd=name)
    for _ in range(3):
        p1 = ftplib.parse227(f.sendcmd("PASV"))[1]
        p2 = ftplib.parse227(f.sendcmd("PASV"))[1]
        if p1 != p2:
            break
    assert p1 != p2
    with pytest.raises(ConnectionRefusedError):
        connect_from_elsewhere("127.0.0.1", p1)
    f.makepasv = lambda: ("127.0.0.1", p2)
    got, resp = retr(f, "RETR f.bin")
    assert got == data and resp.startswith("226")
    f.quit()


def test_pasv_port_reused_while_in_time_wait(make_server, wd):
    """A range of one port serves download after download: the server closes each data
    connection first, so the port waits in TIME_WAIT, and the next PASV must bind it anyway."""
    name, path = wd
    port = port_below_ephemeral_range()
    # Which end of a download closes first varies with timing; a connection whose end on the
    # port surely closes first puts the port in TIME_WAIT before the first PASV.
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", port))
    lst.listen(1)
    peer = socket.create_connection(("127.0.0.1", port))
    mine, _ = lst.accept()
    mine.close()
    peer.recv(1)                      # its FIN has arrived
    peer.close()
    lst.close()

    def in_time_wait():
        # /proc/net/tcp: local address, then state 06 (TIME_WAIT)
        tw = [l.split() for l in open("/proc/net/tcp").readlines()[1:]]
        return any(t[1].endswith(":%04X" % port) and t[3] == "06" for t in tw)
    assert wait_until(in_time_wait, 5), "the port is not in TIME_WAIT: the test tests nothing"
    s = make_server(pasv_min_port=port, pasv_max_port=port)
    data = os.urandom(5000)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(s, cwd=name)
    for _ in range(4):
        got, resp = retr(f, "RETR f.bin")
        assert got == data and resp.startswith("226"), resp
    f.quit()


def test_pasv_address_announced(make_server, wd):
    """N-01, N-03: pasv_address is announced; the listener still accepts on the control
    connection's address, so a client that ignores the 227 address still transfers."""
    name, path = wd
    s = make_server(pasv_address="192.0.2.7")
    data = os.urandom(10000)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(s, cwd=name)
    resp = f.sendcmd("PASV")
    m = PASV_RE.match(resp)
    assert m and m.groups()[:4] == ("192", "0", "2", "7"), resp
    assert 40000 <= int(m.group(5)) * 256 + int(m.group(6)) <= 44999
    assert not f.trust_server_pasv_ipv4_address
    got, r = retr(f, "RETR f.bin")
    assert got == data and r.startswith("226")
    f.quit()


def test_epsv(server, wd):
    """229 format; EPSV 1 works, EPSV 2 on IPv4 -> 522; EPSV ALL -> 200 and PASV refused."""
    name, path = wd
    data = os.urandom(10000)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(server, cwd=name)
    m = EPSV_RE.match(f.sendcmd("EPSV"))
    assert m, f.lastresp
    assert 40000 <= int(m.group(1)) <= 44999
    assert EPSV_RE.match(f.sendcmd("EPSV 1"))
    with pytest.raises(ftplib.error_perm, match=r"^522 "):
        f.sendcmd("EPSV 2")
    f.makepasv = lambda: ftplib.parse229(f.sendcmd("EPSV"), f.sock.getpeername())
    got, resp = retr(f, "RETR f.bin")
    assert got == data and resp.startswith("226")
    assert f.sendcmd("EPSV ALL").startswith("200")
    with pytest.raises(ftplib.error_perm) as ei:
        f.sendcmd("PASV")
    assert str(ei.value)[0] == "5", ei.value
    got, resp = retr(f, "RETR f.bin")          # still works through EPSV
    assert got == data
    f.quit()


def test_transfer_without_pasv_425(server, wd):
    """B-23: RETR/STOR/LIST without PASV or EPSV -> 425, nothing created."""
    name, path = wd
    put_file(os.path.join(path, "f.bin"), b"x")
    f = client(server, cwd=name)
    for cmd in ("RETR f.bin", "STOR new.bin", "LIST"):
        with pytest.raises(ftplib.error_temp) as ei:
            f.sendcmd(cmd)
        assert str(ei.value).startswith("425 "), ei.value
    assert not os.path.exists(os.path.join(path, "new.bin"))
    # a PASV is used by one transfer only
    got, _ = retr(f, "RETR f.bin")
    with pytest.raises(ftplib.error_temp, match=r"^425 "):
        f.sendcmd("RETR f.bin")
    f.quit()


def data_timeout_session(make_server, wd):
    """A server with data_timeout = 2, a 1000-byte f.bin in wd, and a client there in TYPE I:
    (server, client, the file's bytes)."""
    name, path = wd
    s = make_server(data_timeout=2)
    data = os.urandom(1000)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(s, cwd=name)
    f.voidcmd("TYPE I")
    return s, f, data


def assert_still_usable(f, data):
    """After a failed transfer the control connection answers, and f.bin still downloads."""
    assert f.voidcmd("NOOP").startswith("200")
    got, _ = retr(f, "RETR f.bin")
    assert got == data
    f.quit()


def test_data_timeout_never_connect_425(make_server, wd):
    """B-56: PASV, RETR, the client never connects: 150, then 425 after data_timeout."""
    _, f, data = data_timeout_session(make_server, wd)
    assert PASV_RE.match(f.sendcmd("PASV"))
    t0 = time.time()
    assert f.sendcmd("RETR f.bin").startswith("150 ")
    with pytest.raises(ftplib.error_temp) as ei:
        f.getresp()
    took = time.time() - t0
    assert str(ei.value).startswith("425 "), ei.value
    assert 1.5 <= took < 6, took
    assert_still_usable(f, data)


def test_data_timeout_no_client_hello(make_server, wd):
    """Z-02, D-17: the client connects but never starts TLS: 150, then 425/522 after
    data_timeout; the control connection stays usable."""
    _, f, data = data_timeout_session(make_server, wd)
    port = ftplib.parse227(f.sendcmd("PASV"))[1]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    t0 = time.time()
    assert f.sendcmd("RETR f.bin").startswith("150 ")
    with pytest.raises((ftplib.error_temp, ftplib.error_perm)) as ei:
        f.getresp()
    assert str(ei.value)[:3] in ("425", "522"), ei.value
    assert time.time() - t0 < 6
    assert read_all(sock, 2) == b""
    sock.close()
    assert_still_usable(f, data)


def test_data_timeout_bounds_a_dripped_client_hello(make_server, wd):
    """data_timeout bounds the data connection's whole TLS handshake: a ClientHello sent one
    byte a second (each read within the socket timeout) gets 522 after data_timeout, not after
    the ~10 minutes its bytes would take; the control connection stays usable."""
    s, f, data = data_timeout_session(make_server, wd)
    ctx = ssl.create_default_context(cafile=s.env.cert)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = out.read()
    assert len(hello) > 200
    port = ftplib.parse227(f.sendcmd("PASV"))[1]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert f.sendcmd("RETR f.bin").startswith("150 ")
    t0 = time.time()
    reply = None
    for byte in hello[:30]:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
        if select.select([f.sock], [], [], 1.0)[0]:
            break
    try:
        reply = f.getresp()
    except ftplib.Error as e:
        reply = str(e)
    took = time.time() - t0
    sock.close()
    assert reply is not None and reply.startswith("522 "), reply
    assert "timed out" in reply
    assert 1.5 <= took < 6, took
    assert_still_usable(f, data)


def test_data_timeout_upload_stalls(make_server, wd):
    """data_timeout also bounds a stalled upload: 426 and no file under the final name."""
    name, path = wd
    s = make_server(data_timeout=2)
    f = client(s, cwd=name)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("STOR stall.bin")
    conn.sendall(os.urandom(10000))
    t0 = time.time()
    with pytest.raises(ftplib.error_temp) as ei:
        f.getresp()
    assert str(ei.value)[:3] in ("426", "425", "451"), ei.value
    assert time.time() - t0 < 8
    hard_close(conn)
    assert not os.path.exists(os.path.join(path, "stall.bin"))
    assert wait_until(lambda: parts(path) == [])
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()


@pytest.mark.parametrize("prot_p", [False, True], ids=["prot-c", "prot-p"])
def test_data_timeout_download_stalls(make_server, wd, prot_p):
    """data_timeout also bounds a download the client stops reading: PROT C sends the file with
    sendfile(2) calls of up to 1 GiB, which the socket's send timeout must still cut short.
    426 naming the timeout; the session goes on. Any progress restarts the timeout, and the
    stalled client's kernel still takes a little now and then (its receive queue is collapsed
    and the window reopens), so the end comes after about four timeouts here, 1 MiB calls or
    not; without the send timeout it would never come (ftplib gives up after 20 s)."""
    name, path = wd
    s = make_server(data_timeout=2, require_prot_p="no")
    put_file(os.path.join(path, "big.bin"), os.urandom(48 * 1024 * 1024))
    f = client(s, cwd=name, prot_p=prot_p)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("RETR big.bin")  # the 150; nothing is read from conn
    t0 = time.time()
    with pytest.raises(ftplib.error_temp) as ei:
        f.getresp()
    took = time.time() - t0
    assert str(ei.value).startswith("426 "), ei.value
    assert "no progress" in str(ei.value), ei.value
    assert 1.5 <= took < 14, took
    hard_close(conn)
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()


# --- 9. interrupted uploads ------------------------------------------------------------------

@pytest.mark.parametrize("existing", [False, True], ids=["new-name", "existing-file"])
def test_upload_client_vanishes(server, wd, existing):
    """The client drops data and control connections mid-upload, with no close_notify: no
    truncated file under the final name, no temporary file left."""
    name, path = wd
    target = os.path.join(path, "big.bin")
    before = os.urandom(50000)
    if existing:
        put_file(target, before)
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("STOR big.bin")
    chunk = os.urandom(256 * 1024)
    for _ in range(8):
        conn.sendall(chunk)
    # the temporary file is there while the upload runs
    assert wait_until(lambda: len(parts(path)) == 1, 3), os.listdir(path)
    hard_close(conn)
    hard_close(f.sock)
    assert wait_until(lambda: parts(path) == [], 5), os.listdir(path)
    if existing:
        assert read_file(target) == before
    else:
        assert not os.path.exists(target), os.path.getsize(target)


def test_upload_without_close_notify_426(server, wd):
    """D-14 (strict default): the data connection ends with a TCP FIN but no close_notify:
    426, and the file is not stored. The control connection still works."""
    name, path = wd
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("STOR trunc.bin")
    conn.sendall(os.urandom(500000))
    socket.socket.shutdown(conn, socket.SHUT_WR)   # TCP FIN, no TLS close_notify
    with pytest.raises(ftplib.error_temp) as ei:
        f.getresp()
    conn.close()
    assert str(ei.value).startswith("426 "), ei.value
    assert not os.path.exists(os.path.join(path, "trunc.bin"))
    assert wait_until(lambda: parts(path) == [])
    assert f.voidcmd("NOOP").startswith("200")
    # an existing file is not replaced either
    keep = put_file(os.path.join(path, "keep.bin"), b"original")
    conn = f.transfercmd("STOR keep.bin")
    conn.sendall(b"replacement that never finishes")
    socket.socket.shutdown(conn, socket.SHUT_WR)
    with pytest.raises(ftplib.error_temp, match=r"^426 "):
        f.getresp()
    conn.close()
    assert read_file(keep) == b"original"
    data = os.urandom(1000)
    assert stor(f, "STOR trunc.bin", data).startswith("226")
    assert read_file(os.path.join(path, "trunc.bin")) == data
    f.quit()


def test_upload_without_close_notify_accepted_when_configured(make_server, wd):
    """upload_require_close_notify = no: a TCP close ends the upload successfully."""
    name, path = wd
    s = make_server(upload_require_close_notify="no")
    f = client(s, cwd=name)
    f.voidcmd("TYPE I")
    data = os.urandom(300000)
    conn = f.transfercmd("STOR ok.bin")
    conn.sendall(data)
    socket.socket.shutdown(conn, socket.SHUT_WR)
    resp = f.voidresp()
    conn.close()
    assert resp.startswith("226"), resp
    assert read_file(os.path.join(path, "ok.bin")) == data
    f.quit()


def test_retr_client_closes_data_midway(server, wd):
    """Z-01, B-55: the client drops the data connection half-way through a RETR: 426, and the
    control connection stays usable."""
    name, path = wd
    big = os.path.join(path, "big.bin")
    with open(big, "wb") as fh:
        fh.truncate(64 * 1024 * 1024)
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("RETR big.bin")
    assert len(conn.recv(65536)) > 0
    hard_close(conn)
    with pytest.raises((ftplib.error_temp, ftplib.error_perm)) as ei:
        f.getresp()
    assert str(ei.value)[:3] in ("426", "451"), ei.value
    assert f.voidcmd("NOOP").startswith("200")
    put_file(os.path.join(path, "small"), b"small")
    got, _ = retr(f, "RETR small")
    assert got == b"small"
    f.quit()


# --- 10. ABOR --------------------------------------------------------------------------------

@TLS_VERSIONS
def test_abor_during_large_retr(server, wd, tls):
    """B-37, T-25, D-19: ABOR (inside TLS, no urgent data) during a 200 MB RETR -> 426 then 226;
    NOOP and new resumed transfers work afterwards (TLS 1.2 too: the control session was not
    dropped from the cache)."""
    name, path = wd
    big = os.path.join(path, "big.bin")
    with open(big, "wb") as fh:
        fh.truncate(200 * 1024 * 1024)
    os.chown(big, uid("alice"), uid("alice"))
    f = client(server, tls=tls, cwd=name)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("RETR big.bin")
    got = 0
    while got < 100000:
        d = conn.recv(65536)
        assert d
        got += len(d)
    t0 = time.time()
    f.putcmd("ABOR")
    first = f.getline()
    second = f.getline()
    assert first.startswith("426 "), (first, second)
    assert second.startswith("226 "), (first, second)
    assert time.time() - t0 < 5
    conn.close()
    assert f.voidcmd("NOOP") == "200 NOOP ok."
    put_file(os.path.join(path, "small.bin"), b"after abort")
    for _ in range(3):
        data, resp = retr(f, "RETR small.bin")
        assert data == b"after abort" and resp.startswith("226")
    # Z-08: EPSV + LIST after the abort
    f.makepasv = lambda: ftplib.parse229(f.sendcmd("EPSV"), f.sock.getpeername())
    listing, resp = retr(f, "NLST", type_="A")
    assert sorted(lines_of(listing)) == ["big.bin", "small.bin"]
    f.quit()


def test_abor_during_stor(server, wd):
    """Z-07: ABOR during an upload -> 426 then 226; the unfinished upload is not stored under
    the final name (the documented policy), no temporary file is left."""
    name, path = wd
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("STOR aborted.bin")
    conn.sendall(os.urandom(300000))
    f.putcmd("ABOR")
    first, second = f.getline(), f.getline()
    assert first.startswith("426 ") and second.startswith("226 "), (first, second)
    hard_close(conn)
    assert not os.path.exists(os.path.join(path, "aborted.bin"))
    assert wait_until(lambda: parts(path) == [])
    data = os.urandom(1000)
    assert stor(f, "STOR aborted.bin", data).startswith("226")
    assert read_file(os.path.join(path, "aborted.bin")) == data
    f.quit()


def test_abor_without_transfer(server, wd):
    """B-36: ABOR with no transfer -> 225 (or 226 if a PASV listener was open)."""
    name, _ = wd
    f = client(server, cwd=name)
    assert f.sendcmd("ABOR")[:3] in ("225", "226")
    f.sendcmd("PASV")
    assert f.sendcmd("ABOR")[:3] in ("225", "226")
    with pytest.raises(ftplib.error_temp, match=r"^425 "):
        f.sendcmd("LIST")                        # the listener was closed by ABOR
    f.quit()


def test_stat_during_transfer(server, wd):
    """B-51: STAT during a RETR answers without breaking the transfer."""
    name, path = wd
    data = os.urandom(8 * 1024 * 1024)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("RETR f.bin")
    buf = bytearray(conn.recv(65536))
    f.putcmd("STAT")
    stat = f.getmultiline()
    assert stat[:3] in ("211", "213"), stat
    while True:
        d = conn.recv(65536)
        if not d:
            break
        buf += d
    conn.unwrap()
    conn.close()
    assert f.voidresp().startswith("226")
    assert bytes(buf) == data
    f.quit()


# --- 13. zero-byte upload, 14. many sequential transfers ------------------------------------

@TLS_VERSIONS
def test_zero_byte_upload(server, wd, tls):
    """D-22: an empty upload under PROT P -> 226 and an empty file."""
    name, path = wd
    f = client(server, tls=tls, cwd=name)
    resp = stor(f, "STOR empty.bin", b"")
    assert resp.startswith("226 "), resp
    target = os.path.join(path, "empty.bin")
    assert os.path.isfile(target) and os.path.getsize(target) == 0
    # and over an existing non-empty file
    put_file(target, b"not empty")
    assert stor(f, "STOR empty.bin", b"").startswith("226")
    assert os.path.getsize(target) == 0
    got, resp = retr(f, "RETR empty.bin")
    assert got == b"" and resp.startswith("226")
    f.quit()


@TLS_VERSIONS
def test_sequential_retrs(server, wd, tls):
    """Z-10, D-05: 15 RETRs in a row on one control connection, each resuming."""
    name, path = wd
    files = {}
    for i in range(15):
        files[f"f{i}.bin"] = os.urandom(1000 + i * 997)
        put_file(os.path.join(path, f"f{i}.bin"), files[f"f{i}.bin"])
    f = client(server, tls=tls, cwd=name)
    for n, data in files.items():
        got, resp = retr(f, "RETR " + n)
        assert resp.startswith("226 "), (n, resp)
        assert got == data, n
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()


def test_mixed_sequence_on_one_connection(server, wd):
    """Uploads, downloads and listings interleaved on one control connection."""
    name, path = wd
    f = client(server, cwd=name)
    blobs = [os.urandom(5000 * (i + 1)) for i in range(5)]
    for i, b in enumerate(blobs):
        assert stor(f, f"STOR m{i}", b).startswith("226")
        listing, _ = retr(f, "NLST", type_="A")
        assert sorted(lines_of(listing)) == [f"m{j}" for j in range(i + 1)]
        got, _ = retr(f, f"RETR m{i}")
        assert got == b
    f.quit()


# --- 11. curl --------------------------------------------------------------------------------

CURL_TLS = pytest.mark.parametrize("tlsargs", [["--tlsv1.3"], ["--tlsv1.2", "--tls-max", "1.2"]],
                                   ids=["tls13", "tls12"])


@CURL_TLS
def test_curl_many_downloads_one_invocation(server, wd, tmp_path, tlsargs, syslog):
    """D-03, D-05: 10 downloads in one curl run (one login, each data connection resumes).
    (curl 7.88 itself sometimes idles 1 s before opening a data connection.)"""
    name, path = wd
    files = {}
    args = list(tlsargs)
    for i in range(10):
        files[f"c{i}.bin"] = os.urandom(2000 + 4096 * i)
        put_file(os.path.join(path, f"c{i}.bin"), files[f"c{i}.bin"])
        args += [server.url(f"{name}/c{i}.bin"), "-o", str(tmp_path / f"c{i}.bin")]
    r = server.curl(*args, check=False)
    assert r.returncode == 0, r.stderr
    for n, data in files.items():
        assert (tmp_path / n).read_bytes() == data, n
    log = log_text(syslog, wait_for=f'RETR "/{name}/c9.bin"')
    if log is not None:
        want = "TLSv1.3" if tlsargs == ["--tlsv1.3"] else "TLSv1.2"
        lines = [l for l in log.splitlines() if f'RETR "/{name}/c' in l and "bytes=" in l]
        assert len(lines) == 10, lines
        for l in lines:
            assert f"tls={want}" in l and " resumed " in l and "reply=226" in l, l


# TLS 1.3 uploads once lost data: a NewSessionTicket sent on every data connection stayed unread
# by curl and lftp, whose close() then reset the connection (426 "Connection reset by peer"),
# and curl's next data connection had no unused ticket left (522). The curl and lftp upload
# tests and test_upload_by_client_that_never_reads keep that covered (checklist D-11).


@CURL_TLS
def test_curl_listing_and_single_transfers(server, wd, tmp_path, tlsargs):
    """curl: directory listing (LIST), --list-only (NLST), one upload, a zero-byte upload."""
    name, path = wd
    data = os.urandom(300000)
    put_file(os.path.join(path, "a.bin"), data)
    put_file(os.path.join(path, "b c.txt"), b"spaced\n")
    r = curl_ok(server, *tlsargs, server.url(f"{name}/"))
    lines = r.stdout.decode().splitlines()
    assert sorted(LS_RE.match(l).group(9) for l in lines) == ["a.bin", "b c.txt"], lines
    r = curl_ok(server, *tlsargs, "--list-only", server.url(f"{name}/"))
    assert sorted(r.stdout.decode().splitlines()) == ["a.bin", "b c.txt"]
    r = curl_ok(server, *tlsargs, server.url(f"{name}/b%20c.txt"))
    assert r.stdout == b"spaced\n"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    curl_ok(server, *tlsargs, "-T", str(empty), server.url(f"{name}/empty.bin"))
    assert os.path.getsize(os.path.join(path, "empty.bin")) == 0


@CURL_TLS
def test_curl_uploads_one_invocation(server, wd, tmp_path, tlsargs):
    """D-03, D-05, D-11: 12 uploads (-T) in one curl run, then a download in the same session;
    every upload is stored complete and no transfer is refused."""
    name, path = wd
    data = os.urandom(200000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    args = list(tlsargs)
    for i in range(12):
        args += ["-T", str(src), server.url(f"{name}/u{i}.bin")]
    out = tmp_path / "back.bin"
    args += ["--next", "--ssl-reqd", "--cacert", server.env.cert, "-u",
             f"alice:{USERS['alice'][1]}", *tlsargs, server.url(f"{name}/u0.bin"), "-o", str(out)]
    r = server.curl(*args, check=False)
    stored = [i for i in range(12)
              if os.path.exists(os.path.join(path, f"u{i}.bin"))
              and read_file(os.path.join(path, f"u{i}.bin")) == data]
    assert stored == list(range(12)), (stored, r.stderr)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == data
    assert parts(path) == []


@CURL_TLS
def test_curl_resume_and_append(server, wd, tmp_path, tlsargs):
    """curl -C - (SIZE + REST + RETR) and --append (APPE)."""
    name, path = wd
    data = os.urandom(100000)
    put_file(os.path.join(path, "r.bin"), data)
    out = tmp_path / "r.bin"
    out.write_bytes(data[:30000])
    curl_ok(server, *tlsargs, "-C", "-", server.url(f"{name}/r.bin"), "-o", str(out))
    assert out.read_bytes() == data
    extra = tmp_path / "extra"
    extra.write_bytes(b"APPENDED")
    curl_ok(server, *tlsargs, "--append", "-T", str(extra), server.url(f"{name}/r.bin"))
    assert read_file(os.path.join(path, "r.bin")) == data + b"APPENDED"


# --- 12. lftp --------------------------------------------------------------------------------

@CURL_TLS
def test_curl_transfer_after_data_connection_without_transfer(server, wd, tmp_path, tlsargs):
    """curl opens its data connection before SIZE; when SIZE fails (a missing file, a file over
    --max-filesize) the connection is dropped without a transfer, and the next URL of the same
    run needs a TLS 1.3 ticket it has not used (OpenSSL spends each one once on the client)."""
    name, path = wd
    put_file(os.path.join(path, "big.bin"), os.urandom(200000))
    put_file(os.path.join(path, "small.txt"), b"small\n")
    for first in (["--max-filesize", "1000", server.url(f"{name}/big.bin")],
                  [server.url(f"{name}/missing.bin")]):
        out = tmp_path / "small.txt"
        if out.exists():
            out.unlink()
        r = server.curl(*tlsargs, *first, "-o", str(tmp_path / "first"),
                        server.url(f"{name}/small.txt"), "-o", str(out), check=False)
        # curl exits with the last URL's status; the first URL's own error is only printed.
        assert r.returncode == 0 and out.read_bytes() == b"small\n", r.stderr


LFTP_QUICK_RETRY = ("set net:reconnect-interval-base 1; set net:reconnect-interval-multiplier 1; "
                    "set net:reconnect-interval-max 1; ")


@pytest.mark.parametrize("tls12", [False, True], ids=["tls13", "tls12"])
def test_lftp_gets_ls_mirror(server, env, tmp_path, tls12):
    """D-03, D-05: lftp, one session: 12 gets, ls, mirror of a directory tree."""
    name = "lftp_dl_" + ("tls12" if tls12 else "tls13") + "_" + RUN
    path = make_dir(env, "alice", name)
    files = {}
    for i in range(12):
        files[f"g{i}.bin"] = os.urandom(1000 + 3001 * i)
        put_file(os.path.join(path, f"g{i}.bin"), files[f"g{i}.bin"])
    tree = make_dir(env, "alice", f"{name}/tree")
    make_dir(env, "alice", f"{name}/tree/d1")
    make_dir(env, "alice", f"{name}/tree/d1/d2")
    make_dir(env, "alice", f"{name}/tree/emptydir")
    treefiles = {"top.txt": b"top\n", "d1/a.bin": os.urandom(70000),
                 "d1/d2/deep.bin": os.urandom(123456), "d1/d2/z.txt": b"",
                 "d1/with space.txt": b"spaced\n"}
    for rel, data in treefiles.items():
        put_file(os.path.join(tree, rel), data)
    local = tmp_path / "got"
    local.mkdir()
    log = tmp_path / "lftp.log"
    script = f"debug -o {log} 9; " + LFTP_QUICK_RETRY + f"cd {name}; "
    script += "".join(f"get g{i}.bin -o {local}/g{i}.bin; " for i in range(12))
    script += f"ls; mirror tree {tmp_path}/mirror; "
    r = server.lftp(script, tls12=tls12, check=False)
    assert r.returncode == 0, (r.stdout, r.stderr)
    failures = [l for l in log.read_text(errors="replace").splitlines()
                if re.search(r"<--- [45]\d\d ", l) and "SITE" not in l]
    for n, data in files.items():
        assert (local / n).read_bytes() == data, n
    ls_names = set()
    for l in r.stdout.decode().splitlines():
        m = LS_RE.match(l)
        if m:
            ls_names.add(m.group(9))
    assert ls_names == set(files) | {"tree"}, r.stdout
    for rel, data in treefiles.items():
        assert (tmp_path / "mirror" / rel).read_bytes() == data, rel
    assert (tmp_path / "mirror" / "emptydir").is_dir()
    # no transfer failed and was silently retried by lftp
    assert not [l for l in failures if re.search(r"<--- (4[25]\d|522|55\d) ", l)], failures


@pytest.mark.parametrize("tls12", [False, True], ids=["tls13", "tls12"])
def test_lftp_put_and_mirror_upload(server, env, tmp_path, tls12):
    """lftp uploads: 10 puts of 400 kB and a mirror -R of a tree, in one session, none of them
    refused or retried."""
    name = "lftp_up_" + ("tls12" if tls12 else "tls13") + "_" + RUN
    path = make_dir(env, "alice", name)
    upsrc = tmp_path / "up.bin"
    updata = os.urandom(400000)
    upsrc.write_bytes(updata)
    uptree = tmp_path / "uptree"
    (uptree / "x" / "y").mkdir(parents=True)
    (uptree / "x" / "y" / "f.bin").write_bytes(updata[:99999])
    (uptree / "r.txt").write_bytes(b"r\n")
    log = tmp_path / "lftp.log"
    script = f"debug -o {log} 9; " + LFTP_QUICK_RETRY + f"cd {name}; "
    script += "".join(f"put {upsrc} -o up{i}.bin; " for i in range(10))
    script += f"mirror -R {uptree} uptree; ls; "
    r = server.lftp(script, tls12=tls12, check=False)
    text = log.read_text(errors="replace") if log.exists() else ""
    refused = [l for l in text.splitlines() if re.search(r"<--- (4[25]\d|522|55\d) ", l)]
    assert r.returncode == 0 and not refused, (r.stderr, refused)
    for i in range(10):
        assert read_file(os.path.join(path, f"up{i}.bin")) == updata, i
    assert read_file(os.path.join(path, "uptree/x/y/f.bin")) == updata[:99999]
    assert read_file(os.path.join(path, "uptree/r.txt")) == b"r\n"
    assert parts(path) == []


# --- more data-connection behaviour ----------------------------------------------------------

def upload_never_reading(f, cmd, data):
    """An upload as GnuTLS clients (lftp, FileZilla) do it: TLS resumed, data, close_notify,
    close, and never a read on the data connection after the handshake."""
    f.voidcmd("TYPE I")
    raw, _ = ftplib.FTP.ntransfercmd(f, cmd)
    assert f.lastresp == "150"
    obj, out = bio_handshake(f.context, raw, f.sock.session)
    assert obj.session_reused
    for i in range(0, len(data), 16384):
        obj.write(data[i:i + 16384])
        raw.sendall(out.read())
    try:
        obj.unwrap()
    except ssl.SSLWantReadError:
        pass
    raw.sendall(out.read())                 # close_notify
    raw.close()
    return f.voidresp()


@TLS_VERSIONS
def test_upload_by_client_that_never_reads(server, wd, tls):
    """D-11, D-13: a complete upload (ended by close_notify) from a client that never reads the
    data connection must be stored. Reproduces the lftp failure deterministically."""
    name, path = wd
    data = os.urandom(4 * 1024 * 1024)
    f = client(server, tls=tls, cwd=name)
    resp = None
    try:
        resp = upload_never_reading(f, "STOR gnutls.bin", data)
    except ftplib.Error as e:
        resp = str(e)
    assert resp.startswith("226"), resp
    assert sha(read_file(os.path.join(path, "gnutls.bin"))) == sha(data)
    f.quit()


def retr_strict_eof(f, cmd, type_="I"):
    """Like retr(), but a TCP close without close_notify raises SSLEOFError."""
    f.voidcmd("TYPE " + type_)
    raw, _ = ftplib.FTP.ntransfercmd(f, cmd)
    conn = f.context.wrap_socket(raw, server_hostname="localhost", session=f.sock.session,
                                 suppress_ragged_eofs=False)
    buf = bytearray()
    while True:
        d = conn.recv(65536)        # SSLEOFError here = no close_notify from the server
        if not d:
            break
        buf += d
    conn.unwrap()
    conn.close()
    return bytes(buf), f.voidresp()


def test_download_ends_with_close_notify(server, wd):
    """D-12: RETR (empty and not), LIST and MLSD end with the server's close_notify."""
    name, path = wd
    data = os.urandom(300000)
    put_file(os.path.join(path, "f.bin"), data)
    put_file(os.path.join(path, "empty"), b"")
    f = client(server, cwd=name)
    got, resp = retr_strict_eof(f, "RETR f.bin")
    assert got == data and resp.startswith("226")
    got, resp = retr_strict_eof(f, "RETR empty")
    assert got == b"" and resp.startswith("226")
    got, resp = retr_strict_eof(f, "LIST", "A")
    assert len(lines_of(got)) == 2 and resp.startswith("226")
    got, resp = retr_strict_eof(f, "MLSD", "A")
    assert len(lines_of(got)) == 3 and resp.startswith("226")
    f.quit()


def test_download_client_closes_without_close_notify(server, wd):
    """D-15: the client reads everything, then closes TCP without close_notify: 226, at once."""
    name, path = wd
    data = os.urandom(300000)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("RETR f.bin")
    got = read_all(conn)
    t0 = time.time()
    hard_close(conn)
    assert f.voidresp().startswith("226")
    assert time.time() - t0 < 3
    assert got == data
    f.quit()


@pytest.mark.parametrize("wait,low,high", [(1, 0.5, 2.5), (4, 3.5, 6.5)])
def test_data_close_timeout(make_server, env, wait, low, high):
    """data_close_timeout: a client that has read everything, the server's close_notify too,
    but neither answers it nor closes, gets its 226 after that long."""
    s = make_server(data_close_timeout=wait)
    path = make_dir(env, "alice", f"close_wait_{wait}_{RUN}")
    put_file(os.path.join(path, "f.bin"), os.urandom(100000))
    f = client(s, cwd=os.path.basename(path))
    f.voidcmd("TYPE I")
    conn = f.transfercmd("RETR f.bin")
    got = read_all(conn)
    t0 = time.time()
    assert len(got) == 100000
    assert f.voidresp().startswith("226")
    assert low <= time.time() - t0 < high
    hard_close(conn)
    f.quit()


@pytest.mark.parametrize("drain,low,high", [(1, 0.0, 3.0), (5, 4.5, 9.0)])
def test_upload_drain_timeout(make_server, env, drain, low, high):
    """upload_drain_timeout: an upload refused mid-way (over max_file_size: 552) has the rest
    of what the client sends read and dropped for that long, then the reply comes although the
    client is still sending."""
    s = make_server(max_file_size=100000, upload_drain_timeout=drain, data_timeout=3)
    f = client(s)
    f.voidcmd("TYPE I")
    conn = f.transfercmd(f"STOR drain_{drain}_{RUN}.bin")
    conn.sendall(b"x" * 200000)
    t0 = time.time()
    reply = None
    while time.time() - t0 < 15:
        if select.select([f.sock], [], [], 0.2)[0]:
            reply = f.sock.recv(4096)
            break
        try:
            conn.sendall(b"y" * 1024)
        except (OSError, ssl.SSLError):
            pass
    elapsed = time.time() - t0
    assert reply is not None and reply.startswith(b"552"), reply
    assert low <= elapsed < high, elapsed
    hard_close(conn)
    f.close()


def test_plaintext_on_protected_data_connection(server, wd):
    """T-20: under PROT P the client talks plaintext on the data connection: 150, then 522 (or
    425); nothing of the file is sent in the clear."""
    name, path = wd
    put_file(os.path.join(path, "f.bin"), b"CLEARTEXT-SECRET" * 1000)
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    port = ftplib.parse227(f.sendcmd("PASV"))[1]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert f.sendcmd("RETR f.bin").startswith("150 ")
    with pytest.raises((ftplib.error_perm, ftplib.error_temp)) as ei:
        f.getresp()
    assert str(ei.value)[:3] in ("522", "425"), ei.value
    got = read_all(sock, 5)
    sock.close()
    assert b"CLEARTEXT" not in got
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()


def test_second_connection_to_passive_port_refused(server, wd):
    """Z-03, N-06: once the client's data connection is accepted the listener is closed; a
    second connection is refused and the first keeps its transfer."""
    name, path = wd
    data = os.urandom(200000)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    port = ftplib.parse227(f.sendcmd("PASV"))[1]
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert f.sendcmd("RETR f.bin").startswith("150 ")
    conn = f.context.wrap_socket(raw, server_hostname="localhost", session=f.sock.session)
    assert conn.session_reused
    with pytest.raises(ConnectionRefusedError):
        connect_from_elsewhere("127.0.0.1", port)
    got = read_all(conn)
    conn.close()
    assert f.voidresp().startswith("226")
    assert got == data
    f.quit()


def test_failed_transfer_command_closes_listener(server, wd, env):
    """B-21, B-22, B-25, N-06: RETR missing / RETR dir / STOR or APPE without permission: 550
    (or 553) before any 1xx, no temporary file, and the passive listener is closed."""
    name, path = wd
    rootfile = os.path.join(path, "rootfile")
    with open(rootfile, "wb") as fh:
        fh.write(b"owned by root")
    secret = os.path.join(path, "secret")
    with open(secret, "wb") as fh:
        fh.write(b"root only")
    os.chmod(secret, 0o600)
    ro = os.path.join(path, "rodir")
    os.mkdir(ro)                               # owned by root, 0755: alice cannot write
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    for cmd in ("RETR missing", "RETR rodir", "RETR secret", "STOR rootfile", "APPE rootfile",
                "STOR rodir/new", "APPE rodir/new", "STOR rodir", "LIST missing",
                "MLSD missing"):
        port = ftplib.parse227(f.sendcmd("PASV"))[1]
        with pytest.raises(ftplib.error_perm) as ei:
            f.sendcmd(cmd)
        assert str(ei.value)[:3] in ("550", "553", "450"), (cmd, ei.value)
        with pytest.raises(ConnectionRefusedError):
            connect_from_elsewhere("127.0.0.1", port)
    assert read_file(rootfile) == b"owned by root"
    assert os.listdir(ro) == [] and parts(path) == []
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()


def test_commands_during_transfer_are_queued(server, wd):
    """Commands sent during a transfer are answered after its final reply, in order."""
    name, path = wd
    data = os.urandom(6 * 1024 * 1024)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("RETR f.bin")
    buf = bytearray(conn.recv(65536))
    f.putcmd("NOOP")
    f.putcmd("PWD")
    f.putcmd("SIZE f.bin")
    buf += read_all(conn)
    conn.close()
    assert bytes(buf) == data
    assert f.getresp().startswith("226")
    assert f.getresp().startswith("200")
    assert f.getresp() == f'257 "/{name}" is the current directory.'
    assert f.getresp() == f"213 {len(data)}"
    f.quit()


@pytest.mark.parametrize("prefix", [b"", b"\xff\xf4\xff\xf2"], ids=["plain", "telnet-ip-dm"])
def test_abor_while_waiting_for_data_connection(server, wd, prefix):
    """ABOR after 150 when the client never connected: 426 then 226 (also behind the RFC 959
    Telnet IP + Synch bytes)."""
    name, path = wd
    put_file(os.path.join(path, "f.bin"), b"x" * 1000)
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    f.sendcmd("PASV")
    assert f.sendcmd("RETR f.bin").startswith("150 ")
    f.sock.sendall(prefix + b"ABOR\r\n")
    first, second = f.getline(), f.getline()
    assert first.startswith("426 ") and second.startswith("226 "), (first, second)
    assert f.voidcmd("NOOP").startswith("200")
    got, _ = retr(f, "RETR f.bin")
    assert got == b"x" * 1000
    f.quit()


def test_abor_with_telnet_sync_during_retr(server, wd):
    """B-37 with the RFC 959 sequence IAC IP IAC DM ABOR inside TLS."""
    name, path = wd
    big = os.path.join(path, "big.bin")
    with open(big, "wb") as fh:
        fh.truncate(100 * 1024 * 1024)
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("RETR big.bin")
    assert conn.recv(65536)
    f.sock.sendall(b"\xff\xf4\xff\xf2ABOR\r\n")
    first, second = f.getline(), f.getline()
    assert first.startswith("426 ") and second.startswith("226 "), (first, second)
    conn.close()
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()


def test_rest_appe(server, wd):
    """X-14: REST n + APPE writes at offset n, like REST + STOR."""
    name, path = wd
    orig = os.urandom(1000)
    target = put_file(os.path.join(path, "a.bin"), orig)
    f = client(server, cwd=name)
    assert stor(f, "APPE a.bin", b"N" * 50, rest=100).startswith("226")
    assert read_file(target) == orig[:100] + b"N" * 50
    f.quit()


def test_file_over_4gib(server, wd):
    """Z-06: SIZE, MLSD size, LIST size and REST are 64-bit (sparse 5 GiB file)."""
    name, path = wd
    big = os.path.join(path, "huge.bin")
    size = 5 * 1024 ** 3 + 7
    with open(big, "wb") as fh:
        fh.truncate(size - 10)
        fh.seek(size - 10)
        fh.write(b"0123456789")
    os.chown(big, uid("alice"), uid("alice"))
    f = client(server, cwd=name)
    f.voidcmd("TYPE I")
    assert f.sendcmd("SIZE huge.bin") == f"213 {size}"
    got, resp = retr(f, "RETR huge.bin", rest=size - 10)
    assert got == b"0123456789" and resp.startswith("226")
    data, _ = retr(f, "MLSD", type_="A")
    facts = dict((n, fa) for fa, n in map(parse_mlsd, lines_of(data)))
    assert int(facts["huge.bin"]["size"]) == size
    data, _ = retr(f, "LIST", type_="A")
    assert int(LS_RE.match(lines_of(data)[0]).group(5)) == size
    f.quit()


def test_concurrent_uploads_same_name(server, wd):
    """Two sessions upload the same name at once: each 226, and the file is one of the two
    uploads complete (never a mix), no temporary file left."""
    name, path = wd
    a, b = client(server, cwd=name), client(server, cwd=name)
    da, db = os.urandom(2 * 1024 * 1024), os.urandom(2 * 1024 * 1024)
    a.voidcmd("TYPE I")
    b.voidcmd("TYPE I")
    ca, cb = a.transfercmd("STOR same.bin"), b.transfercmd("STOR same.bin")
    for i in range(0, len(da), 256 * 1024):
        ca.sendall(da[i:i + 256 * 1024])
        cb.sendall(db[i:i + 256 * 1024])
    ca.unwrap()
    ca.close()
    assert a.voidresp().startswith("226")
    assert read_file(os.path.join(path, "same.bin")) == da
    cb.unwrap()
    cb.close()
    assert b.voidresp().startswith("226")
    assert read_file(os.path.join(path, "same.bin")) == db
    assert parts(path) == []
    a.quit()
    b.quit()


def test_reader_sees_old_content_while_file_is_replaced(server, wd):
    """A RETR in progress keeps sending the old file when another session replaces it."""
    name, path = wd
    old, new = os.urandom(6 * 1024 * 1024), os.urandom(100000)
    put_file(os.path.join(path, "f.bin"), old)
    reader, writer = client(server, cwd=name), client(server, cwd=name)
    reader.voidcmd("TYPE I")
    conn = reader.transfercmd("RETR f.bin")
    buf = bytearray(conn.recv(65536))
    assert stor(writer, "STOR f.bin", new).startswith("226")
    buf += read_all(conn)
    conn.close()
    assert reader.voidresp().startswith("226")
    assert sha(bytes(buf)) == sha(old)
    assert read_file(os.path.join(path, "f.bin")) == new
    reader.quit()
    writer.quit()


def test_stor_over_existing_keeps_mode(server, wd):
    """Replacing a file through the temporary file keeps its permission bits."""
    name, path = wd
    target = put_file(os.path.join(path, "m.bin"), b"old")
    os.chmod(target, 0o600)
    f = client(server, cwd=name)
    assert stor(f, "STOR m.bin", b"new content").startswith("226")
    st = os.stat(target)
    assert read_file(target) == b"new content"
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == uid("alice")
    assert stor(f, "STOR fresh.bin", b"x").startswith("226")
    assert os.stat(os.path.join(path, "fresh.bin")).st_mode & 0o777 == 0o644   # umask 022
    f.quit()


def test_paths_in_transfer_arguments(server, wd):
    """RETR/STOR/LIST/NLST with relative and absolute paths; NLST dir gives 'dir/name'."""
    name, path = wd
    sub = os.path.join(path, "sub")
    os.mkdir(sub)
    os.chown(sub, uid("alice"), uid("alice"))
    data = os.urandom(5000)
    f = client(server)                      # stays in the home directory
    assert stor(f, f"STOR {name}/sub/x.bin", data).startswith("226")
    assert read_file(os.path.join(path, "sub", "x.bin")) == data
    got, _ = retr(f, f"RETR /{name}/sub/x.bin")
    assert got == data
    listing, _ = retr(f, f"NLST {name}/sub", type_="A")
    assert lines_of(listing) == [f"{name}/sub/x.bin"]
    got, _ = retr(f, "RETR " + lines_of(listing)[0])
    assert got == data
    listing, _ = retr(f, f"LIST /{name}/sub", type_="A")
    assert [LS_RE.match(l).group(9) for l in lines_of(listing)] == ["x.bin"]
    f.quit()


def test_ipv6_epsv_transfer(make_server, wd):
    """N-08, B-14: on an IPv6 control connection PASV is refused, EPSV works, EPSV 1 -> 522."""
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    name, path = wd
    s = make_server(listen="[::1]")
    data = os.urandom(100000)
    put_file(os.path.join(path, "f.bin"), data)
    f = client(s, cwd=name)
    assert f.af == socket.AF_INET6
    with pytest.raises(ftplib.error_perm) as ei:
        f.sendcmd("PASV")
    assert str(ei.value)[0] == "5", ei.value
    with pytest.raises(ftplib.error_perm, match=r"^522 "):
        f.sendcmd("EPSV 1")
    assert EPSV_RE.match(f.sendcmd("EPSV 2"))
    got, resp = retr(f, "RETR f.bin")          # ftplib uses EPSV on IPv6
    assert got == data and resp.startswith("226")
    assert stor(f, "STOR up.bin", data).startswith("226")
    assert read_file(os.path.join(path, "up.bin")) == data
    f.quit()
