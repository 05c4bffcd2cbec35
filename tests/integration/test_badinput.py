"""Bad input corpus (issue "Reliability"): overlong lines, NUL bytes, Telnet IAC sequences, CR/LF
injection, format strings, ../ and symlink escapes, PORT/EPRT bounce targets, garbage instead
of a TLS handshake, TLS garbage on data connections, oversized numbers, a 4 GB REST on a small
file, huge MLST/OPTS fact lists, 1000 pipelined NOOPs, and clients that send commands during a
transfer and then vanish.

Every item is sent at the point where it matters; the test checks the exact reply (or a clean
close), that the session is still in step (NOOP) where it goes on, that the session's processes
end once it is closed, and that a NEW session on the same server still logs in and answers NOOP.
The module prints how many bad inputs were tried."""
import hashlib
import os
import random
import re
import shutil
import socket
import ssl
import time

import pytest

from ftpsd_fixture import NOPRIV, USERS, Server, bio_handshake, connect_from_elsewhere
from reliability import (RUN, SyslogMark, alive, assert_server_works, children, count,
                         descendants, epsv_port, make_user_dir, parts, proc_uid, put, read_to_eof,
                         report, rst_close, wait_until)

RNG = random.Random(0x5EED)


@pytest.fixture(scope="module")
def bserver(env):
    s = Server(env, name="badinput")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bdir(env):
    """badin_<RUN> in alice's home: the login sessions of this module work in it."""
    name = f"badin_{RUN}"
    path = make_user_dir(env, "alice", name)
    yield name, path
    shutil.rmtree(path, ignore_errors=True)


_LOG = {}


@pytest.fixture(scope="module", autouse=True)
def summary(request, syslog):
    _LOG["mark"] = SyslogMark(syslog)
    yield
    report(request, "test_badinput.py bad inputs tried", ["bad inputs"])


def bad(n=1):
    count("bad inputs", n)


# pids of this module's sessions, to pick their lines out of a syslog other test runs on the
# machine may write to as well.
MY_PIDS = set()


def session_at(server, phase, cwd=None):
    """A session at a phase: 'plain' (after the greeting), 'tls' (after AUTH TLS), 'login'
    (logged in as alice, PBSZ 0, PROT P, in cwd). r.mon is its monitor {pid: starttime}."""
    before = set(children(server.proc.pid))
    r = server.raw(timeout=30)
    assert r.reply()[0] == 220
    mons = {p: t for p, t in descendants(server.proc.pid).items()
            if p in set(children(server.proc.pid)) - before}
    assert len(mons) == 1, mons
    r.mon = mons
    if phase == "plain":
        return r
    r.starttls(server.env.cert)
    if phase == "tls":
        return r
    r.login("alice")
    assert r.cmd("PBSZ 0")[0] == 200
    assert r.cmd("PROT P")[0] == 200
    if cwd:
        assert r.cmd(f"CWD {cwd}")[0] == 250
    return r


def session_procs(r):
    """The monitor of r's session and everything below it, now."""
    procs = dict(r.mon)
    for mon in r.mon:
        procs.update(descendants(mon))
    MY_PIDS.update(procs)
    return procs


def finish(server, r=None, procs=None):
    """Closes the session, checks that all its processes end, and that a new session logs in
    and answers NOOP."""
    if r is not None:
        procs = {**session_procs(r), **(procs or {})}
        r.close()
    if procs:
        assert wait_until(lambda: not alive(procs), 15), \
            f"session processes left: {alive(procs)}"
    assert_server_works(server)


def check_replies(r, expected):
    """expected: codes, or (code, substring the reply must contain)."""
    got = []
    for e in expected:
        code, lines = r.reply()
        got.append((code, lines))
        want, needle = (e, None) if isinstance(e, int) else e
        assert code == want, (expected, got)
        if needle is not None:
            assert needle in "\n".join(lines), (needle, lines)
    return got


# --- single command lines -----------------------------------------------------------------------

A10K = b"A" * 10240
LINES = [
    # overlong lines (max_line_length 4096)
    pytest.param("login", b"NOOP " + A10K, [500], id="10KB-line"),
    pytest.param("tls", b"USER " + b"a" * 10240, [500], id="10KB-line-before-login"),
    pytest.param("plain", A10K, [500], id="10KB-line-plaintext"),
    pytest.param("login", b"STOR " + b"x" * 70000, [500], id="70KB-line"),
    pytest.param("login", b"NOOP " + A10K + b"\r\nNOOP", [500, 200], id="10KB-line-then-NOOP"),
    pytest.param("login", b"MKD " + b"d" * 4092, [550], id="line-of-exactly-4096"),
    pytest.param("login", b"MKD " + b"d" * 4093, [500], id="line-of-4097"),
    pytest.param("login", b"\xff\xfa" + b"z" * 9000, [500], id="10KB-IAC-SB"),
    pytest.param("login", b"NOOP\r\nMKD " + b"d" * 4092 + b"\r\nNOOP", [200, 550, 200],
                 id="4096-line-between-short-ones"),
    pytest.param("login", b"NOOP\r\nMKD " + b"d" * 4093 + b"\r\nNOOP", [200, 500, 200],
                 id="4097-line-between-short-ones"),
    pytest.param("login", b"MKD " + b"d" * 4094, [500], id="CR-as-4099th-byte"),
    # NUL bytes
    pytest.param("login", b"NO\x00OP", [500], id="NUL-in-verb"),
    pytest.param("login", b"\x00", [500], id="NUL-line"),
    pytest.param("login", b"MKD a\x00b", [501], id="NUL-in-MKD"),
    pytest.param("login", b"CWD /\x00/etc", [501], id="NUL-in-CWD"),
    pytest.param("login", b"RETR \x00", [501], id="NUL-as-RETR-path"),
    pytest.param("login", b"DELE x\x00../../etc/passwd", [501], id="NUL-in-DELE"),
    pytest.param("login", b"RNFR x\x00y", [501], id="NUL-in-RNFR"),
    pytest.param("login", b"SITE CHMOD 644 a\x00b", [501], id="NUL-in-SITE"),
    pytest.param("login", b"MLST \x00\x00\x00", [501], id="NUL-in-MLST"),
    pytest.param("tls", b"USER al\x00ice", [501], id="NUL-in-USER"),
    pytest.param("tls", b"USER alice\r\nPASS alice\x00-secret", [331, 501], id="NUL-in-PASS"),
    pytest.param("plain", b"HOST a\x00b", [501], id="NUL-in-HOST"),
    # Telnet IAC sequences
    pytest.param("login", b"NOOP\xff", [200], id="IAC-at-end-of-line"),
    pytest.param("login", b"NOOP\xff\xfb", [200], id="IAC-WILL-at-end-of-line"),
    pytest.param("login", b"\xff", [500], id="IAC-alone"),
    pytest.param("login", b"\xff\xfa\x18NOOP", [500], id="IAC-SB-without-SE"),
    pytest.param("login", b"\xff\xfa\x18abc\r\nNOOP", [500, 200],
                 id="IAC-SB-without-SE-ends-at-line"),
    pytest.param("login", b"\xff\xfa\x18\x01\xff\xf0NOOP", [200], id="IAC-SB-SE"),
    pytest.param("login", b"\xff\xfb\x18\xff\xfd\x01\xff\xfc\x03\xff\xfe\x05NOOP", [200],
                 id="IAC-WILL-DO-WONT-DONT"),
    pytest.param("login", b"\xff\xfd\x0aNOOP\r\nNOOP", [200, 200], id="IAC-DO-LF-option"),
    pytest.param("login", b"NO\xff\xffOP", [500], id="IAC-IAC-in-verb"),
    pytest.param("login", b"\xff\xf4\xff\xf2NOOP", [200], id="IAC-IP-DM"),
    pytest.param("login", b"CWD nonexistent\xff\xfa/etc", [(550, "nonexistent")],
                 id="IAC-SB-in-path"),
    pytest.param("plain", b"\xff\xfb\x01\xff\xfd\x03NOOP", [200], id="IAC-WILL-DO-plaintext"),
    pytest.param("tls", b"\xff\xfaUSER alice", [500], id="IAC-SB-before-USER"),
    # CR/LF handling
    pytest.param("login", b"NOOP\r\rNOOP", [500], id="bare-CRs-in-line"),
    pytest.param("login", b"NOOP\nNOOP\nNOOP", [200, 200, 200], id="bare-LF-lines"),
    pytest.param("login", b"\r\n\r\nNOOP", [500, 500, 200], id="empty-lines"),
    pytest.param("login", b" NOOP", [500], id="leading-space"),
    pytest.param("login", b"NOOP\tx", [500], id="tab-in-verb"),
    pytest.param("login", b"N\xc3\x96OP", [500], id="UTF-8-in-verb"),
    pytest.param("login", b"NOOP  ", [501], id="NOOP-with-blank-argument"),
    pytest.param("tls", b"USER alice\rPASS x", [331], id="CR-in-USER"),
    # format strings
    pytest.param("tls", b"USER %s%s%n%x", [331], id="fmt-USER"),
    pytest.param("tls", b"USER %s%s%n%x\r\nPASS %n%n%n%n", [331, (530, "Login incorrect")],
                 id="fmt-USER-PASS"),
    pytest.param("login", b"MKD %s%s%n%x", [(257, "/%s%s%n%x")], id="fmt-MKD"),
    pytest.param("login", b"CWD %n%n%n%n%s", [(550, "%n%n%n%n%s")], id="fmt-CWD"),
    pytest.param("login", b"SIZE %s%s%s%s%s%s%s%s", [(550, "%s%s%s%s%s%s%s%s")], id="fmt-SIZE"),
    pytest.param("login", b"SITE %s%n%x%p", [(500, "%s%n%x%p")], id="fmt-SITE"),
    pytest.param("login", b"SITE CHMOD 644 %n%s%x", [(550, "%n%s%x")], id="fmt-SITE-CHMOD"),
    pytest.param("login", b"HELP %s%n%x", [(502, "%s%n%x")], id="fmt-HELP"),
    pytest.param("plain", b"HELP %s%s%s%s", [(502, "%s%s%s%s")], id="fmt-HELP-plaintext"),
    pytest.param("login", b"%s%n%x%s", [500], id="fmt-verb"),
    pytest.param("login", b"OPTS %s%n", [501], id="fmt-OPTS"),
    pytest.param("plain", b"HOST %s%n", [501], id="fmt-HOST"),
    pytest.param("login", b"MLST %99999999s", [(550, "%99999999s")], id="fmt-width-MLST"),
    # oversized numbers
    pytest.param("login", b"PBSZ 4294967296", [501], id="PBSZ-2^32"),
    pytest.param("login", b"PBSZ 18446744073709551616", [501], id="PBSZ-2^64"),
    pytest.param("login", b"PBSZ " + b"9" * 200, [501], id="PBSZ-200-digits"),
    pytest.param("login", b"PBSZ -1", [501], id="PBSZ-negative"),
    pytest.param("login", b"PBSZ 0x10", [501], id="PBSZ-hex"),
    pytest.param("login", b"PBSZ 4294967295", [(200, "PBSZ=0")], id="PBSZ-max"),
    pytest.param("plain", b"PBSZ 0", [503], id="PBSZ-before-AUTH"),
    pytest.param("login", b"REST 9223372036854775807", [350], id="REST-int64-max"),
    pytest.param("login", b"REST 9223372036854775808", [501], id="REST-int64-max-plus-1"),
    pytest.param("login", b"REST 18446744073709551616", [501], id="REST-2^64"),
    pytest.param("login", b"REST " + b"9" * 500, [501], id="REST-500-digits"),
    pytest.param("login", b"REST -1", [501], id="REST-negative"),
    pytest.param("login", b"REST 1e9", [501], id="REST-exponent"),
    pytest.param("login", b"EPSV 4294967297", [501], id="EPSV-huge"),
    pytest.param("login", b"TYPE L 99999999999", [504], id="TYPE-L-huge"),
    pytest.param("login", b"ALLO " + b"9" * 100, [202], id="ALLO-huge"),
    pytest.param("login", b"SITE CHMOD 77777777777777777777777 x", [501], id="SITE-CHMOD-huge"),
    pytest.param("login", b"SITE CHMOD -1 x", [501], id="SITE-CHMOD-negative"),
    pytest.param("login", b"SITE UMASK 99999999999999999", [501], id="SITE-UMASK-huge"),
    pytest.param("login", b"MFMT 99999999999999 x", [501], id="MFMT-huge-date"),
    pytest.param("login", b"MFMT 20241301000000 x", [501], id="MFMT-month-13"),
    pytest.param("login", b"MDTM 99991231235959 nofile", [550], id="MDTM-year-9999"),
    # huge MLST / OPTS fact lists and paths
    pytest.param("login", b"OPTS MLST " + b"type;" * 800, [(200, "200 MLST OPTS type;")],
                 id="OPTS-MLST-800-facts"),
    pytest.param("login", b"OPTS MLST " + b"Size;TYPE;modify;perm;unique;unix.mode;unix.owner;"
                 b"unix.group;" * 50, [(200, "MLST OPTS type;size;modify;perm;unique;unix.mode;"
                                            "unix.owner;unix.group;")], id="OPTS-MLST-all-x50"),
    pytest.param("login", b"OPTS MLST " + b"x" * 4080, [(200, "200 MLST OPTS")],
                 id="OPTS-MLST-4KB-unknown-fact"),
    pytest.param("login", b"OPTS MLST " + b";" * 4000, [501], id="OPTS-MLST-4000-semicolons"),
    pytest.param("login", b"OPTS MLST " + b"a=b;" * 900, [501], id="OPTS-MLST-900-values"),
    pytest.param("login", b"OPTS MLST " + b"type;" * 3000, [500], id="OPTS-MLST-15KB"),
    pytest.param("login", b"OPTS " + b"X" * 4000, [501], id="OPTS-4KB-name"),
    pytest.param("login", b"OPTS UTF8 " + b"ON" * 2000, [501], id="OPTS-UTF8-4KB"),
    pytest.param("login", b"MLST " + b"a/" * 2040, [550], id="MLST-2040-components"),
    pytest.param("login", b"MLST " + b"../" * 1360, [(250, "Listing /")], id="MLST-1360-dotdots"),
    pytest.param("login", b"MLST " + b"x" * 4000, [550], id="MLST-4000-char-name"),
    pytest.param("login", b"STAT " + b"y" * 4000, [550], id="STAT-4000-char-name"),
    pytest.param("login", b"CWD " + b"a/" * 2000, [550], id="CWD-2000-components"),
    # state and syntax
    pytest.param("tls", b"PASS alice-secret", [503], id="PASS-before-USER"),
    pytest.param("tls", b"RETR /etc/passwd", [530], id="RETR-before-login"),
    pytest.param("tls", b"AUTH TLS", [503], id="AUTH-twice"),
    pytest.param("plain", b"AUTH " + b"X" * 3000, [504], id="AUTH-3KB-mechanism"),
    pytest.param("plain", b"USER alice", [530], id="USER-before-AUTH"),
    pytest.param("plain", b"HOST " + b"h" * 300, [501], id="HOST-300-chars"),
    pytest.param("tls", b"USER " + b"u" * 300, [501], id="USER-300-chars"),
    pytest.param("tls", b"USER " + b"u" * 256, [501], id="USER-256-chars"),
    pytest.param("tls", b"USER " + b"u" * 255 + b"\r\nPASS x", [331, 530], id="USER-255-chars"),
    pytest.param("tls", b"USER alice\r\nPASS " + b"p" * 1023, [331, 530], id="PASS-1023-chars"),
    pytest.param("tls", b"USER alice\r\nPASS " + b"p" * 1024, [331, 530], id="PASS-1024-chars"),
    pytest.param("tls", b"USER root\r\nPASS x", [331, 530], id="USER-root"),
    pytest.param("tls", b"USER ../../etc\r\nPASS x", [331, 530], id="USER-dotdot"),
    pytest.param("tls", b"USER alice:0:0\r\nPASS x", [331, 530], id="USER-colons"),
    pytest.param("tls", b"USER \x07\x1b[2J\r\nPASS x", [331, 530], id="USER-control-chars"),
    pytest.param("tls", b"USER alice\r\nPASS " + b"p" * 3000, [331, 530], id="PASS-3KB"),
    pytest.param("login", b"RNTO x", [503], id="RNTO-without-RNFR"),
    pytest.param("login", b"USER bob", [530], id="USER-after-login"),
    pytest.param("login", b"noop", [200], id="lowercase-verb"),
    pytest.param("login", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", [500], id="long-verb"),
    pytest.param("login", b"CCC", [534], id="CCC-refused"),
    pytest.param("login", b"REIN", [502], id="REIN-refused"),
]


@pytest.mark.parametrize("phase,payload,expected", LINES)
def test_bad_line(bserver, bdir, phase, payload, expected):
    r = session_at(bserver, phase, bdir[0])
    r.send(payload + b"\r\n")
    bad()
    check_replies(r, expected)
    # The session is still in step: the next command gets its own answer.
    assert r.cmd("NOOP")[0] == 200
    finish(bserver, r)


def test_random_binary_lines(bserver, bdir):
    """50 lines of random bytes (no LF, IAC or blank), in one write: one 500 each, in order."""
    lines = []
    for _ in range(50):
        n = RNG.randint(1, 200)
        lines.append(bytes(RNG.choice([b for b in range(256) if b not in (10, 13, 32, 255)])
                           for _ in range(n)))
    r = session_at(bserver, "login", bdir[0])
    r.send(b"".join(l + b"\r\n" for l in lines))
    bad(len(lines))
    for i in range(len(lines)):
        code, ls = r.reply()
        assert code == 500, (i, lines[i], ls)
    assert r.cmd("NOOP")[0] == 200
    finish(bserver, r)


@pytest.mark.parametrize("verb", [b"NOOP\x00x", b"DELE\x00x"], ids=["NOOP", "DELE"])
def test_nul_inside_verb_is_not_a_command(bserver, bdir, env, verb):
    name, path = bdir
    victim = put(os.path.join(path, "victim-nul"), b"keep me")
    r = session_at(bserver, "login", name)
    line = verb + (b" victim-nul" if verb.startswith(b"DELE") else b"")
    r.send(line + b"\r\n")
    bad()
    code, lines = r.reply()
    try:
        assert code == 500, (line, lines)
        assert os.path.exists(victim)
        assert r.cmd("NOOP")[0] == 200
    finally:
        finish(bserver, r)


# --- CR/LF injection in file names ----------------------------------------------------------

def test_crlf_injection_in_names(bserver, bdir):
    """A bare CR in a name does not split the command ("DELE nonexistent<CR>DELE victim" is one
    DELE of one odd name), the reply carries the CR as Telnet CR NUL, and "%0d%0a" is taken
    literally."""
    name, path = bdir
    victim = put(os.path.join(path, "victim"), b"keep me")
    r = session_at(bserver, "login", name)
    r.send(b"DELE nonexistent\rDELE victim\r\n")
    bad()
    code, lines = r.reply()
    assert code == 550 and "nonexistent\r\x00DELE victim" in lines[0], lines
    assert os.path.exists(victim)
    r.send(b"MKD x%0d%0aDELE victim\r\n")
    bad()
    code, lines = r.reply()
    assert code == 257, lines
    assert os.path.isdir(os.path.join(path, "x%0d%0aDELE victim"))
    assert os.path.exists(victim)
    # "STOR a<CR>DELE victim": one upload to one odd name, refused as a name with a CR.
    code, lines = r.cmd("EPSV")
    r.send(b"STOR a\rDELE victim\r\n")
    bad()
    code, lines = r.reply()
    assert code == 553 and "a\r\x00DELE victim: File names may not contain CR" in lines[0], lines
    assert not os.path.exists(os.path.join(path, "a\rDELE victim"))
    assert os.path.exists(victim)
    r.send(b"RNFR victim\r\n")
    assert r.reply()[0] == 350
    r.send(b"RNTO renamed\rDELE renamed\r\n")
    bad()
    assert r.reply()[0] == 553
    assert os.path.exists(victim)
    assert not os.path.exists(os.path.join(path, "renamed\rDELE renamed"))
    # A name with CR and LF that exists on disk (made outside FTP) stays inside its reply line.
    put(os.path.join(path, "evil\r\n226 injected"), b"x")
    r.send(b"STAT .\r\n")
    bad()
    code, lines = r.reply()
    assert code == 213 and lines[-1].startswith("213 ") and lines[-1] != "226 injected", lines
    assert not any(re.match(r"^\d{3}[ -]", l) for l in lines[1:-1]), lines
    assert r.cmd("NOOP")[0] == 200
    finish(bserver, r)


# --- ../ and symlink escapes ------------------------------------------------------------------

@pytest.fixture(scope="module")
def escape_server(env):
    s = Server(env, name="badinput-openat2", chroot="no", root_dir=os.path.join(env.homes, "%u"))
    yield s
    s.stop()


@pytest.mark.parametrize("confinement", ["chroot", "openat2"])
def test_dotdot_and_symlink_escapes(bserver, escape_server, env, confinement):
    """Symlinks made in the home pointing to /, /etc, /etc/passwd and to a sentinel outside the
    root, and ../ paths: everything resolves inside the user's root, nothing outside is read or
    changed."""
    s = bserver if confinement == "chroot" else escape_server
    name = f"esc_{confinement}_{RUN}"
    path = make_user_dir(env, "alice", name)
    sentinel_dir = env.path(f"sentinel-{confinement}-{RUN}")
    os.mkdir(sentinel_dir)
    sentinel = os.path.join(sentinel_dir, "sentinel")
    with open(sentinel, "wb") as fh:
        fh.write(b"outside the root")
    os.chmod(sentinel, 0o666)
    os.chmod(sentinel_dir, 0o777)
    sent_stat = os.stat(sentinel)
    links = {"rootlink": "/", "etclink": "/etc", "passwdlink": "/etc/passwd",
             "uplink": "../../../../../../../..", "sentlink": sentinel,
             "sentdirlink": sentinel_dir}
    for ln, target in links.items():
        os.symlink(target, os.path.join(path, ln))
        os.lchown(os.path.join(path, ln), USERS["alice"][0], USERS["alice"][0])
    try:
        check_escapes(s, name)
    finally:
        shutil.rmtree(path, ignore_errors=True)
    with open(sentinel, "rb") as fh:
        assert fh.read() == b"outside the root"
    st = os.stat(sentinel)
    assert (st.st_mode, st.st_mtime) == (sent_stat.st_mode, sent_stat.st_mtime)
    assert os.listdir(sentinel_dir) == ["sentinel"]
    assert not os.path.exists("/etc/ftpsd-escape")
    assert not os.path.exists("/tmp/ftpsd-escape-" + RUN)


def check_escapes(s, name):
    r = session_at(s, "login", name)
    cases = [
        ("CWD ../../../../../..", 250), ("PWD", 257),
        ("CWD /" + name, 250),
        ("SIZE ../../../../../etc/passwd", 550),
        ("SIZE /../../etc/hostname", 550),
        ("SIZE etclink/passwd", 550), ("SIZE passwdlink", 550), ("SIZE uplink/etc/passwd", 550),
        ("CWD etclink", 550), ("MDTM passwdlink", 550),
        ("SIZE sentlink", 550), ("SIZE sentdirlink/sentinel", 550),
        ("SITE CHMOD 600 sentlink", 550), ("MFMT 20000101000000 sentlink", 550),
        ("MKD etclink/ftpsd-escape", 550), ("MKD sentdirlink/ftpsd-escape", 550),
        ("RNFR sentdirlink/sentinel", 550),
        ("STAT etclink/", 550),
    ]
    for c, want in cases:
        bad()
        code, lines = r.cmd(c)
        assert code == want, (c, lines)
    code, lines = r.cmd("PWD")
    assert lines[0].startswith(f'257 "/{name}"'), lines
    # "/" through the symlink and through ../ is the user's root, not the real one.
    for c in ("STAT rootlink/", "STAT uplink/", "STAT ../../../../"):
        bad()
        code, lines = r.cmd(c)
        assert code == 213, (c, lines)
        names = [l.rsplit(" ", 1)[-1] for l in lines[1:-1]]
        assert name in names, (c, lines)
        assert not {"etc", "proc", "usr", "bin", "root"} & set(names), (c, lines)
    # Transfers through the escapes.
    for c in ("RETR passwdlink", "RETR etclink/passwd", "RETR ../../../../etc/passwd",
              "STOR sentlink", "STOR sentdirlink/new", "APPE sentlink", "STOR etclink/x",
              "STOR ../../../../../tmp/ftpsd-escape-" + RUN):
        code, lines = r.cmd("EPSV")
        assert code == 229
        bad()
        code, lines = r.cmd(c)
        assert code in (550, 553), (c, lines)
    assert r.cmd("NOOP")[0] == 200
    finish(s, r)


# --- PORT / EPRT bounce targets --------------------------------------------------------------

BOUNCE = [
    ("PORT 10,0,0,1,200,1", 500), ("PORT 8,8,8,8,0,25", 500), ("PORT 0,0,0,0,200,1", 500),
    ("PORT 255,255,255,255,200,1", 500), ("PORT 127,0,0,2,200,1", 500),
    ("PORT 127,0,0,1,0,21", 504), ("PORT 127,0,0,1,0,0", 504), ("PORT 127,0,0,1,3,255", 504),
    ("PORT 127,0,0,1,256,0", 501), ("PORT 127,0,0,1,99999,1", 501), ("PORT 127,0,0,1,200", 501),
    ("PORT 127,0,0,1,200,1,5", 501), ("PORT -1,0,0,1,200,1", 501), ("PORT 1270,0,0,1,4,1", 501),
    ("EPRT |1|10.0.0.1|5000|", 500), ("EPRT |1|192.0.2.1|21|", 500),
    ("EPRT |1|127.0.0.1|21|", 504), ("EPRT |1|127.0.0.1|1023|", 504),
    ("EPRT |1|127.0.0.1|0|", 501), ("EPRT |1|127.0.0.1|65536|", 501),
    ("EPRT |1|127.0.0.1|99999999999|", 501), ("EPRT |1|127.0.0.1|-1|", 501),
    ("EPRT |1|localhost|5000|", 501), ("EPRT |1|127.0.0.1|5000", 501), ("EPRT ||||", 501),
    ("EPRT " + "|" * 200, 501), ("EPRT |2|::1|5000|", 522),
    ("EPRT |2|::ffff:127.0.0.1|5000|", 522),
    ("EPRT |3|x|5000|", 522),
]


def test_port_eprt_bounce_targets(bserver, bdir):
    """Other hosts, privileged ports, port 0, 65536 and malformed targets are refused; the data
    channel is not armed (a transfer after them gets 425)."""
    r = session_at(bserver, "login", bdir[0])
    for c, want in BOUNCE:
        bad()
        code, lines = r.cmd(c)
        assert code == want, (c, lines)
        assert r.cmd("NLST")[0] == 425, c
    assert r.cmd("NOOP")[0] == 200
    finish(bserver, r)


# --- garbage instead of a TLS ClientHello -----------------------------------------------------

def no_shared_cipher_hello():
    """A real TLS 1.2 ClientHello offering only a cipher the server does not (RSA key exchange)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("AES128-SHA")
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def junk(n, seed):
    """n bytes of junk, the same every run. Fresh random bytes now and then (about 1 in 700
    for 4 KB after 0x16, 1 in 650 for 1 KB) begin with the header of a record, or of an SSLv2
    ClientHello, longer than what follows: a TLS server rightly waits for the rest, and the
    test then sat until the session's 60 s timeout."""
    return random.Random(seed).randbytes(n)


GARBAGE_234 = [
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "421", id="HTTP-request"),
    pytest.param(b"NOOP\r\n", "421", id="plaintext-command"),
    pytest.param(b"\x00" * 100, "421", id="NUL-bytes"),
    pytest.param(b"\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10" + junk(37, 1), "421",
                 id="SSLv2-hello"),
    pytest.param(b"\x16\x03\x01\x00\x05hello", "alert", id="handshake-record-of-junk"),
    pytest.param(b"\x16\x03\x01\xff\xff" + junk(200, 2), "alert", id="record-length-65535"),
    pytest.param(b"\x16" + junk(4095, 3), "alert", id="0x16-then-4KB-random"),
    # Not a handshake record: refused in plaintext before TLS starts.
    pytest.param(b"\x17\x03\x03\x00\x10" + junk(16, 4), "421", id="application-data-first"),
    pytest.param(b"\x15\x03\x03\x00\x02\x02\x28", "421", id="fatal-alert-first"),
    pytest.param(None, "alert", id="ClientHello-without-shared-cipher"),
]


@pytest.mark.parametrize("payload,outcome", GARBAGE_234)
def test_garbage_after_234(bserver, payload, outcome):
    """After 234 the client sends something that is not a usable ClientHello: a plaintext 421
    (when it does not even look like TLS) or a TLS alert, then the connection closes and the
    session's processes end."""
    if payload is None:
        payload = no_shared_cipher_hello()
        assert payload[:1] == b"\x16"
    r = session_at(bserver, "plain")
    assert r.cmd("AUTH TLS")[0] == 234
    r.send(payload)
    bad()
    got, closed = read_to_eof(r.sock, 8)
    assert closed, f"connection still open; received {got!r}"
    if outcome == "421":
        assert got.startswith(b"421 ") and got.endswith(b"\r\n"), got
    else:
        # Nothing in plaintext: at most a TLS alert record.
        assert got == b"" or got[:1] == b"\x15", got
    finish(bserver, r)


@pytest.mark.parametrize("payload", [
    pytest.param(b"\x16\x03\x01\x00", id="partial-record-header"),
    pytest.param(b"\x16\x03\x03\x00\x00" * 3, id="empty-handshake-records"),
    pytest.param(b"\x16\x03\x01\x02\x00" + os.urandom(100), id="truncated-record"),
])
def test_tls_handshake_stalls_after_234(make_server, payload):
    """A client that starts something that may still become a handshake and then sends nothing
    more is closed at login_timeout, and its processes end."""
    s = make_server(login_timeout=2)
    r = session_at(s, "plain")
    assert r.cmd("AUTH TLS")[0] == 234
    procs = session_procs(r)
    t0 = time.time()
    r.send(payload)
    bad()
    got, closed = read_to_eof(r.sock, 10)
    assert closed and time.time() - t0 < 7, (got, time.time() - t0)
    assert got == b"" or got[:1] == b"\x15", got
    finish(s, r, procs)


# --- TLS garbage on data connections ------------------------------------------------------------

DATA_GARBAGE = [
    pytest.param(lambda: junk(1024, 5).replace(b"\x16", b"\x00"), id="1KB-random"),
    pytest.param(lambda: b"\x16\x03\x03\xff\xff" + junk(64, 6), id="record-length-65535"),
    pytest.param(lambda: b"\x16\x03\x01\x40\x00" + junk(16384, 7), id="16KB-record-of-junk"),
    pytest.param(lambda: b"\x17\x03\x03\x00\x20" + junk(32, 8), id="application-data-first"),
    pytest.param(lambda: b"\x15\x03\x03\x00\x02\x02\x50", id="alert-first"),
    pytest.param(lambda: b"GET / HTTP/1.0\r\n\r\n", id="plaintext"),
]


@pytest.fixture(scope="module")
def xfer_files(bdir):
    name, path = bdir
    data = os.urandom(300000)
    put(os.path.join(path, "small.bin"), data)
    return name, path, data


@pytest.mark.parametrize("cmd", ["RETR small.bin", "STOR garbage-up.bin", "LIST"])
@pytest.mark.parametrize("garbage", DATA_GARBAGE)
def test_tls_garbage_on_data_connection(bserver, xfer_files, cmd, garbage):
    """Under PROT P the client sends garbage on the passive data connection instead of a TLS
    handshake: 150, then 522; nothing is stored; the session goes on."""
    name, path, data = xfer_files
    r = session_at(bserver, "login", name)
    assert r.cmd("TYPE I")[0] == 200
    code, lines = r.cmd("EPSV")
    d = socket.create_connection((bserver.host, epsv_port(lines)), timeout=10)
    d.sendall(garbage())
    bad()
    r.send(cmd + "\r\n")
    check_replies(r, [150, 522])
    got, closed = read_to_eof(d, 5)
    assert closed and data[:64] not in got
    d.close()
    assert not os.path.exists(os.path.join(path, "garbage-up.bin"))
    assert parts(path) == []
    assert r.cmd("NOOP")[0] == 200
    finish(bserver, r)


def test_data_connection_reset_before_handshake(bserver, xfer_files):
    name, path, data = xfer_files
    r = session_at(bserver, "login", name)
    code, lines = r.cmd("EPSV")
    d = socket.create_connection((bserver.host, epsv_port(lines)), timeout=10)
    time.sleep(0.2)
    rst_close(d)
    bad()
    r.send("RETR small.bin\r\n")
    check_replies(r, [150, 522])
    assert r.cmd("NOOP")[0] == 200
    finish(bserver, r)


def test_tls_garbage_in_the_middle_of_an_upload(bserver, xfer_files):
    """A resumed TLS data connection carries part of an upload, then a forged record the
    session keys do not authenticate: 426, nothing stored, the session goes on."""
    name, path, data = xfer_files
    r = session_at(bserver, "login", name)
    assert r.cmd("TYPE I")[0] == 200
    code, lines = r.cmd("EPSV")
    raw = socket.create_connection((bserver.host, epsv_port(lines)), timeout=10)
    r.send("STOR forged.bin\r\n")
    obj, out = bio_handshake(r.ctx, raw, r.sock.session)
    assert obj.session_reused
    assert r.reply()[0] == 150
    obj.write(os.urandom(100000))
    raw.sendall(out.read())
    raw.sendall(b"\x17\x03\x03\x00\x40" + os.urandom(64))     # a record that does not decrypt
    bad()
    code, lines = r.reply()
    assert code == 426, lines
    read_to_eof(raw, 5)
    raw.close()
    assert wait_until(lambda: parts(path) == [], 3)
    assert not os.path.exists(os.path.join(path, "forged.bin"))
    assert r.cmd("NOOP")[0] == 200
    finish(bserver, r)


# --- a 4 GB REST offset on a small file ---------------------------------------------------

@pytest.mark.parametrize("offset", [4 * 1024 ** 3, 2 ** 63 - 1], ids=["4GB", "int64-max"])
def test_rest_beyond_small_file(bserver, xfer_files, offset):
    """REST far beyond the end of a 300 KB file: RETR, STOR and APPE get 554 before any 150,
    the passive listener is closed, the file is unchanged, and the next RETR starts at 0."""
    name, path, data = xfer_files
    r = session_at(bserver, "login", name)
    assert r.cmd("TYPE I")[0] == 200
    for c in ("RETR small.bin", "STOR small.bin", "APPE small.bin"):
        code, lines = r.cmd("EPSV")
        port = epsv_port(lines)
        assert r.cmd(f"REST {offset}")[0] == 350
        bad()
        code, lines = r.cmd(c)
        assert code == 554, (c, lines)
        with pytest.raises(ConnectionRefusedError):
            connect_from_elsewhere(bserver.host, port, timeout=3)
    with open(os.path.join(path, "small.bin"), "rb") as fh:
        assert hashlib.sha256(fh.read()).digest() == hashlib.sha256(data).digest()
    code, lines = r.cmd("EPSV")
    r.send("RETR small.bin\r\n")
    d = r.data_connect(lines)
    assert r.reply()[0] == 150
    assert r.read_all(d) == data
    assert r.reply()[0] == 226
    finish(bserver, r)


# --- pipelining ---------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", ["plain", "login"])
def test_1000_pipelined_noops(bserver, bdir, phase):
    r = session_at(bserver, phase, bdir[0])
    r.send(b"NOOP\r\n" * 1000 + b"SYST\r\n")
    bad()
    for i in range(1000):
        code, lines = r.reply()
        assert (code, lines) == (200, ["200 NOOP ok."]), (i, lines)
    assert r.reply()[0] == 215
    finish(bserver, r)


def test_1000_pipelined_pwds(bserver, bdir):
    """1000 commands answered by the user process, in one write."""
    r = session_at(bserver, "login", bdir[0])
    r.send(b"PWD\r\n" * 1000)
    bad()
    for i in range(1000):
        code, lines = r.reply()
        assert code == 257 and f'"/{bdir[0]}"' in lines[0], (i, lines)
    finish(bserver, r)


def test_300_pipelined_epsv_do_not_leak(bserver, bdir):
    """Each EPSV replaces the previous passive listener: after 300 in one write the front holds
    one listening socket, and the last port is the one that works."""
    r = session_at(bserver, "login", bdir[0])
    r.send(b"EPSV\r\n" * 300)
    bad()
    ports = []
    for i in range(300):
        code, lines = r.reply()
        assert code == 229, (i, lines)
        ports.append(epsv_port(lines))
    mon = next(iter(r.mon))
    front = [p for p in children(mon) if proc_uid(p) == NOPRIV[1]]
    assert len(front) == 1, children(mon)
    fds = os.listdir(f"/proc/{front[0]}/fd")
    assert len(fds) < 16, fds
    # Each EPSV draws a port anew, and may draw the one it just closed: a port that came round
    # again as the last one is open, rightly.
    for p in [p for p in ports[-5:-1] if p != ports[-1]]:
        with pytest.raises(ConnectionRefusedError):
            connect_from_elsewhere(bserver.host, p, timeout=3)
    r.send("NLST\r\n")
    d = r.data_connect(ports[-1])
    assert r.reply()[0] == 150
    r.read_all(d)
    assert r.reply()[0] == 226
    finish(bserver, r)


def test_pipelined_commands_then_half_close(bserver):
    """Commands followed by the client's FIN (plaintext, before AUTH): every command is answered,
    then the server closes."""
    r = session_at(bserver, "plain")
    r.send(b"NOOP\r\nSYST\r\nFEAT\r\nHELP\r\nNOOP\r\n")
    r.sock.shutdown(socket.SHUT_WR)
    bad()
    assert [r.reply()[0] for _ in range(5)] == [200, 215, 211, 214, 200]
    got, closed = read_to_eof(r.sock, 5)
    assert closed and got == b"", got
    finish(bserver, r)


def retr_sent(server, cwd, name):
    """A logged-in session in cwd that has sent "RETR name" after EPSV, in TYPE I: (session,
    the 229 reply's lines), the 150 not read yet."""
    r = session_at(server, "login", cwd)
    assert r.cmd("TYPE I")[0] == 200
    code, lines = r.cmd("EPSV")
    r.send(f"RETR {name}\r\n")
    return r, lines


def test_1000_pipelined_noops_during_a_transfer(bserver, bdir):
    """1000 NOOPs in one write while a download runs: the transfer completes, then 226, then
    1000 answers in order."""
    name, path = bdir
    data = os.urandom(4 * 1024 * 1024)
    put(os.path.join(path, "pipe.bin"), data)
    r, lines = retr_sent(bserver, name, "pipe.bin")
    d = r.data_connect(lines)
    assert r.reply()[0] == 150
    first = d.recv(65536)
    r.send(b"NOOP\r\n" * 1000 + b"PWD\r\n")
    bad()
    rest = r.read_all(d)
    assert first + rest == data
    assert r.reply()[0] == 226
    for i in range(1000):
        assert r.reply()[0] == 200, i
    assert r.reply()[0] == 257
    finish(bserver, r)


@pytest.mark.parametrize("line", [b"NOOP", b"X" * 5000], ids=["noop", "overlong"])
def test_pipelined_lines_before_the_data_connection(bserver, bdir, line):
    """40 lines after the 150 and before the data connection opens: the front queues 32 while
    it waits for the connection, and reads on only after the transfer. Waiting again (for the
    data worker) with a full queue wrote past the end of the queue and crashed the front."""
    name, path = bdir
    put(os.path.join(path, "q.bin"), b"q" * 1000)
    r, lines = retr_sent(bserver, name, "q.bin")
    assert r.reply()[0] == 150
    r.send((line + b"\r\n") * 40)
    bad(40)
    time.sleep(0.5)    # the front reads the lines while it waits for the data connection
    d = r.data_connect(lines)
    assert r.read_all(d) == b"q" * 1000
    assert r.reply()[0] == 226
    want = 200 if line == b"NOOP" else 500
    for i in range(40):
        assert r.reply()[0] == want, i
    assert r.cmd("SYST")[0] == 215
    finish(bserver, r)


@pytest.mark.parametrize("abor", [b"ABOR", b"ABOR ", b"abor  ", b"ABOR" + b" " * 40])
def test_abor_behind_a_full_queue(bserver, bdir, abor):
    """40 NOOPs, then ABOR, during a download the client does not read: 32 NOOPs fill the queue
    of commands waiting for the transfer's end, and ABOR, behind 8 more, still stops the
    transfer at once (it waited for the transfer's end); then all 40 NOOPs are answered.
    Trailing spaces are an empty argument, as for any command."""
    name, path = bdir
    with open(os.path.join(path, "slow.bin"), "wb") as fh:
        fh.truncate(256 * 1024 * 1024)
    r, lines = retr_sent(bserver, name, "slow.bin")
    d = r.data_connect(lines)
    assert r.reply()[0] == 150
    d.recv(65536)
    r.send(b"NOOP\r\n" * 40 + abor + b"\r\n")
    bad(41)
    t0 = time.time()
    first = r.reply()
    took = time.time() - t0
    d.close()
    assert first[0] in (426, 451), first
    assert took < 5, took
    assert r.reply()[0] == 226
    for i in range(40):
        assert r.reply()[0] == 200, i
    assert r.cmd("SYST")[0] == 215
    finish(bserver, r)


@pytest.mark.parametrize("direction", ["download", "upload"])
@pytest.mark.parametrize("how", ["close", "reset"])
def test_commands_during_transfer_then_disconnect(bserver, bdir, direction, how):
    """During a transfer the client sends more commands, then drops both connections: the
    session ends (all its processes), no upload is left behind, and new sessions work."""
    name, path = bdir
    sub = f"dc_{direction}_{how}"
    sub_path = make_user_dir(bserver.env, "alice", f"{name}/{sub}")
    with open(os.path.join(sub_path, "big.bin"), "wb") as fh:
        fh.truncate(64 * 1024 * 1024)
    r = session_at(bserver, "login", f"{name}/{sub}")
    assert r.cmd("TYPE I")[0] == 200
    code, lines = r.cmd("EPSV")
    r.send("RETR big.bin\r\n" if direction == "download" else "STOR up.bin\r\n")
    d = r.data_connect(lines)
    assert r.reply()[0] == 150
    if direction == "download":
        d.recv(65536)
    else:
        d.sendall(os.urandom(500000))
        assert wait_until(lambda: len(parts(sub_path)) == 1, 5)
    procs = session_procs(r)
    r.send(b"NOOP\r\nPWD\r\nSTAT\r\nSYST\r\nLIST\r\n" + b"NOOP\r\n" * 100)
    bad()
    code, lines = r.reply()          # STAT is answered during the transfer
    assert code == 213, lines
    if how == "reset":
        rst_close(d)
        rst_close(r.sock)
    else:
        d.close()
        r.sock.close()
    assert wait_until(lambda: not alive(procs), 15), alive(procs)
    assert parts(sub_path) == []
    assert not os.path.exists(os.path.join(sub_path, "up.bin"))
    finish(bserver, procs=procs)


def test_no_session_left(bserver, escape_server):
    """After the whole corpus no session of the module's servers is still running."""
    for s in (bserver, escape_server):
        assert wait_until(lambda: children(s.proc.pid) == [], 10), children(s.proc.pid)


def test_no_session_process_crashed():
    """Over the whole corpus no process of this module's sessions died of a signal, was killed
    by seccomp, or lost its user process."""
    mark = _LOG.get("mark")
    text = mark.text() if mark is not None else None
    if text is None:
        pytest.skip("no syslog to read")
    mine = re.compile(r" ftpsd\[(\d+)\]: ")
    bad_lines = []
    for line in text.splitlines():
        m = mine.search(line)
        if not m or int(m.group(1)) not in MY_PIDS:
            continue
        if ("died of signal" in line or "killed by seccomp" in line
                or "stopped answering" in line):
            bad_lines.append(line)
    assert not bad_lines, bad_lines
