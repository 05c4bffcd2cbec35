"""Every MUST and SHOULD row of the protocol checklist has a test that cites its ID. Rows not
covered elsewhere are tested here; the last test checks the citations."""
import glob
import io
import os
import re
import socket
import ssl
import subprocess
import time

import pytest

from ftpsd_fixture import USERS, Server

# The checklist's MUST / SHOULD (and MUST NOT / SHOULD NOT) rows.
MUST_SHOULD = """G-04 G-18 G-20 G-21 G-22 G-23 G-26 B-06 B-13 B-51 B-54 M-03 M-04 M-05 M-06 M-07
S-20 T-01 T-02 T-05 T-06 T-06b T-08 T-09 T-10 T-11 T-12 T-13 T-14 T-15 T-17 T-18 T-25 T-36 T-37
T-40 T-41 T-42 T-46 F-01 F-02 F-03 F-07 F-11 E-05 X-07 X-14 X-18 X-20 X-26 X-32 X-33 U-01 U-02
U-06 H-01 H-03 H-04 H-05 H-10 H-11 H-12 H-13 H-08 H-09 K-04 D-10 A-01""".split()




def test_replies_have_the_right_class(server):
    """G-04 (first digit gives the class), S-20 (never a 63z reply)."""
    r = server.tls_raw("alice")
    seen = []
    for c in ("NOOP", "PWD", "TYPE I", "MIC x", "CONF x", "ENC x", "XYZZY", "CWD /nope",
              "RNTO x", "PBSZ 0", "PROT P", "REST 0", "SYST", "FEAT"):
        code, _ = r.cmd(c)
        seen.append(code)
        assert 100 <= code <= 599 and code // 100 != 6
    assert seen[:3] == [200, 257, 200] and seen[6] == 500 and seen[7] == 550 and seen[8] == 503
    r.close()


def test_minimum_implementation(server):
    """M-03/M-04/M-05/M-06/B-13: the RFC 1123 command set, types, modes, structures, X-verbs."""
    r = server.tls_raw("alice")
    for c, code in (("TYPE A N", 200), ("TYPE I", 200), ("TYPE L 8", 200), ("MODE S", 200),
                    ("STRU F", 200), ("ACCT x", 202), ("XPWD", 257), ("XMKD mdir", 257),
                    ("XCWD mdir", 250), ("XCUP", 250), ("XRMD mdir", 250), ("HELP", 214),
                    ("STAT", 211), ("SYST", 215)):
        assert r.cmd(c)[0] == code, c
    code, lines = r.cmd("PASV")
    assert code == 227 and re.search(r"\(\d+,\d+,\d+,\d+,\d+,\d+\)", lines[0])
    assert r.cmd("PORT 127,0,0,1,200,1")[0] == 200
    code, lines = r.cmd("HELP")
    helped = " ".join(lines)
    for verb in ("USER PASS ACCT PORT PASV TYPE MODE STRU RETR STOR APPE RNFR RNTO DELE CWD "
                 "CDUP RMD MKD PWD LIST NLST SYST STAT HELP NOOP QUIT").split():
        assert verb in helped, verb
    r.close()


def test_auth_then_reset(server):
    """T-01/T-02/T-05 (234, then the handshake), T-08/T-09 (USER again; TYPE reset)."""
    r = server.raw()
    r.reply()
    assert r.cmd("TYPE I")[0] == 530                  # not logged in
    assert r.cmd("USER alice")[0] == 530              # TLS required first
    code, lines = r.cmd("AUTH TLS-C")
    assert code == 234 and not lines[0].startswith("334")
    ctx = ssl.create_default_context(cafile=server.env.cert)
    ctx.check_hostname = False
    r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost")
    assert r.cmd(f"PASS {USERS['alice'][1]}")[0] == 503   # no user identity carried over
    r.login("alice")
    code, lines = r.cmd("STAT")
    assert any("TYPE: ASCII" in l for l in lines)     # T-09: TYPE back to A
    r.close()


def test_handshake_failing_halfway_closes_without_reply(server):
    """T-06b: a broken handshake ends the connection without an FTP reply."""
    s = socket.create_connection((server.host, server.port), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    s.sendall(b"AUTH TLS\r\n")
    assert f.readline().startswith(b"234")
    s.sendall(b"\x16\x03\x01\x00\x05garbage-not-a-client-hello")
    s.settimeout(10)
    rest = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    assert b"421" not in rest and not re.search(rb"^\d{3} ", rest)
    s.close()


def test_data_protection_levels(make_server):
    """T-11 (Clear before PROT), T-12 (P stays), T-13/T-14/T-15/T-18 (PBSZ/PROT order and
    levels), T-17 (PASV/EPSV accepted whatever the level)."""
    s = make_server(require_prot_p="no")
    f = s.ftps_reuse("alice", prot_p=False)
    # A directory of its own: other tests leave names in the home that are not UTF-8, which
    # ftplib's NLST cannot decode. One is there while this test lists (and removed after, for
    # the tests that list the home), so that the order of tests cannot matter.
    bad = os.path.join(os.fsencode(s.env.home("alice")), b"not-utf8-\xff")
    open(bad, "wb").close()
    try:
        sub = f"prot-levels-{os.getpid()}-{time.time_ns()}"
        f.mkd(sub)
        f.cwd(sub)
        f.storbinary("STOR clear.txt", io.BytesIO(b"in the clear"))  # T-11: no TLS on data
        f.prot_p()
        for _ in range(3):                                              # T-12
            assert f.nlst() == ["clear.txt"]
        f.quit()
    finally:
        os.unlink(bad)
    r = make_server().tls_raw("alice")
    assert r.cmd("PROT P")[0] == 503                                 # T-13
    assert r.cmd("PBSZ 0") == (200, ["200 PBSZ=0"])                  # T-15
    assert r.cmd("PROT S")[0] == 536 and r.cmd("PROT E")[0] == 536   # T-18
    assert r.cmd("PROT C")[0] == 200
    assert r.cmd("PASV")[0] == 227 and r.cmd("EPSV")[0] == 229       # T-17
    assert r.cmd("PORT 127,0,0,1,200,1")[0] == 200
    assert r.cmd("NLST")[0] == 522                                   # refused at the transfer
    r.close()
    p = make_server().raw()
    p.reply()
    assert p.cmd("PBSZ 0")[0] == 503                                 # T-14
    p.close()


def test_data_certificate_is_the_control_one(server):
    """T-36: the data connection presents the control connection's certificate."""
    r = server.tls_raw("alice")
    r.cmd("PBSZ 0")
    r.cmd("PROT P")
    code, lines = r.cmd("EPSV")
    r.send("NLST\r\n")
    d = r.data_connect(lines)
    assert d.getpeercert(binary_form=True) == r.sock.getpeercert(binary_form=True)
    assert r.reply()[0] == 150
    r.read_all(d)
    assert r.reply()[0] == 226
    r.close()


def test_pre_auth_commands(server):
    """T-46: FEAT and HOST work before AUTH; F-01/F-02/F-03/X-07/X-26/U-01/H-01/T-10/M-07:
    FEAT's form and content; F-11: REST STREAM is listed because it is implemented (X-14)."""
    r = server.raw()
    r.reply()
    assert r.cmd("HOST localhost")[0] == 220
    code, lines = r.cmd("FEAT")
    assert lines[0] == "211-Features:" and lines[-1] == "211 End"
    feats = lines[1:-1]
    assert all(re.match(r"^ [A-Z]", l) for l in feats)                # one SP, upper case
    names = [l.split()[0] for l in feats]
    for must in ("AUTH", "PBSZ", "PROT", "MDTM", "SIZE", "REST", "TVFS", "UTF8", "HOST", "MLST"):
        assert must in names, must
    assert " REST STREAM" in feats
    mlst = [l for l in feats if l.startswith(" MLST ")][0]
    assert re.fullmatch(r" MLST (?:[a-z.]+\*?;)+", mlst)
    for fact in ("type", "size", "modify", "perm", "unique"):
        assert f"{fact}*;" in mlst
    r.close()


def test_lang(make_server):
    """U-06: LANG with no argument and EN give 200, another language 504, a bad tag 501;
    FEAT lists LANG EN*; U-08: REIN undoes it."""
    s = make_server(allow_rein="yes")
    r = s.raw()
    r.reply()
    assert r.cmd("LANG")[0] == 200
    assert r.cmd("LANG EN")[0] == 200
    assert r.cmd("LANG en-US")[0] == 200
    assert r.cmd("LANG fr-CA")[0] == 504
    assert r.cmd("LANG @@")[0] == 501
    code, lines = r.cmd("FEAT")
    assert " LANG EN*" in lines
    assert r.cmd("REIN")[0] == 220
    r.close()


def test_passive_ports_random(server):
    """K-04: passive ports are not handed out in sequence."""
    r = server.tls_raw("alice")
    ports = []
    for _ in range(8):
        code, lines = r.cmd("EPSV")
        ports.append(int(re.search(r"\|\|\|(\d+)\|", lines[0]).group(1)))
    steps = {b - a for a, b in zip(ports, ports[1:])}
    assert len(set(ports)) >= 7 and steps != {1}
    r.close()


def test_rein_row(make_server):
    """B-06: REIN is implemented per RFC 4217 §13 when allowed (test_protocol.py test_rein),
    502 when policy forbids (the default)."""
    r = make_server().tls_raw("alice")
    assert r.cmd("REIN")[0] == 502
    r.close()


def test_tvfs_names(server):
    """X-32: a '/' in an argument always separates path parts (no stored name holds one)."""
    f = server.ftps_reuse("alice")
    f.mkd("tvfs")
    f.storbinary("STOR tvfs/inner.txt", io.BytesIO(b"x"))
    assert f.nlst("tvfs") == ["tvfs/inner.txt"]
    f.voidcmd("TYPE I")
    assert f.sendcmd("SIZE /tvfs//inner.txt") == "213 1"
    f.quit()


def test_host_rows(env, tmp_path):
    """H-10 (a vhost whose certificate cannot be loaded: 421 and close), H-11 (USER without
    HOST), H-12 (REIN forgets HOST)."""
    bad = tmp_path / "missing.pem"
    s = Server(env, name="hostrows", allow_rein="yes", banner="main")
    try:
        with open(s.conf_path, "a") as fh:
            fh.write(f"[host broken.example]\ntls_cert_file = {bad}\ntls_key_file = {bad}\n"
                     "[host other.example]\nbanner = other\n")
        r = s.raw()
        r.reply()
        code, _ = r.cmd("HOST broken.example")
        assert code == 421
        with pytest.raises((EOFError, ConnectionResetError)):
            r.cmd("NOOP")
        r = s.raw()
        r.reply()
        r.starttls(s.env.cert)
        r.login("alice")                                          # H-11
        r.close()
        r = s.raw()
        r.reply()
        assert r.cmd("HOST other.example") == (220, ["220 other"])
        assert r.cmd("REIN")[0] == 220
        assert r.cmd("HOST 127.0.0.1") == (220, ["220 main"])    # not tied to other.example
        r.close()
        # HOST after AUTH, without SNI, naming a section that uses the main certificate: that
        # is the certificate in use (it was refused with 504, the sections being different).
        r = s.raw()
        r.reply()
        r.starttls(s.env.cert, server_hostname=None)
        assert r.cmd("HOST other.example") == (220, ["220 other"])
        r.close()
    finally:
        s.stop()


def test_every_must_and_should_row_is_cited():
    text = ""
    for f in glob.glob(os.path.join(os.path.dirname(__file__), "test_*.py")):
        if os.path.basename(f) != "test_checklist.py":
            text += open(f).read()
    text += open(__file__).read().split("MUST_SHOULD = ")[1].split('"""', 2)[2]
    missing = [row for row in MUST_SHOULD if not re.search(rf"\b{re.escape(row)}\b", text)]
    assert not missing, f"rows without a test citing them: {missing}"
