"""RFC audit of less-trodden replies (RFC 959, 1123, 2228, 2389, 2428, 3659, 4217, 7151).
Each test names the requirement it checks."""
import os
import shutil
import time

import pytest

from ftpsd_fixture import USERS


@pytest.fixture(scope="module", autouse=True)
def cleanup(env):
    """The files made here are in alice's home, which later modules list: removed after."""
    yield
    home = env.home("alice")
    for n in ("audit.txt", "audit.bin", "slow.bin", b"n\xffm".decode("utf-8", "surrogateescape"),
              "x.bin"):
        try:
            os.unlink(os.path.join(home, n))
        except FileNotFoundError:
            pass
    shutil.rmtree(os.path.join(home, "auditdir"), ignore_errors=True)


def _files(env):
    home = env.home("alice")
    with open(os.path.join(home, "audit.txt"), "wb") as fh:
        fh.write(b"line1\nline2\nline3\n")
    with open(os.path.join(home, "audit.bin"), "wb") as fh:
        fh.write(b"0123456789")
    d = os.path.join(home, "auditdir")
    os.makedirs(d, exist_ok=True)
    os.chown(d, USERS["alice"][0], USERS["alice"][0])
    return home


def _upload(r, cmd, data, pre=()):
    code, l229 = r.cmd("EPSV")
    assert code == 229
    for p in pre:
        r.cmd(p)
    code, lines = r.cmd(cmd)
    if code not in (125, 150):
        return code, lines, None
    d = r.data_connect(l229)
    d.sendall(data)
    d.unwrap().close()
    return code, lines, r.reply()


@pytest.mark.parametrize("arg,code", [
    ("A", 200), ("A N", 200), ("a n", 200), ("I", 200), ("i", 200), ("L 8", 200), ("l 8", 200),
    ("A T", 504), ("A C", 504), ("E", 504), ("E N", 504), ("L 7", 504), ("L 16", 504),
    ("X", 501), ("A X", 501), ("L", 501)])
def test_type_forms(server, arg, code):
    """RFC 959 §5.3.2 TYPE grammar; RFC 1123 §4.1.2.13: A N, I and L 8 required; others 504."""
    r = server.tls_raw("alice")
    assert r.cmd("TYPE " + arg)[0] == code
    r.close()


def test_stru_mode_allo(server):
    """RFC 959 §5.1/§5.4: STRU F, MODE S; R/P, B/C -> 504; ALLO -> 202 with or without R."""
    r = server.tls_raw("alice")
    for line, code in [("STRU F", 200), ("STRU R", 504), ("STRU P", 504), ("MODE S", 200),
                       ("MODE B", 504), ("MODE C", 504), ("ALLO 100", 202),
                       ("ALLO 100 R 10", 202), ("ALLO x", 501)]:
        assert r.cmd(line)[0] == code, line
    r.close()


def test_security_command_order(server):
    """RFC 2228 §3 / RFC 4217 §9: PBSZ, PROT need AUTH (503); PROT needs PBSZ (503);
    S/E -> 536, unknown -> 504; ADAT/MIC/CONF/ENC not used (502); CCC in plaintext 533."""
    r = server.raw()
    assert r.reply()[0] == 220
    for line, code in [("PBSZ 0", 503), ("PROT P", 503), ("CCC", 533), ("ADAT x", 502),
                       ("MIC x", 502), ("CONF x", 502), ("ENC x", 502)]:
        assert r.cmd(line)[0] == code, line
    r.starttls(server.env.cert)
    for line, code in [("PROT P", 503), ("PBSZ 0", 200), ("PROT S", 536), ("PROT E", 536),
                       ("PROT X", 504), ("prot p", 200), ("CCC", 534), ("AUTH TLS", 503)]:
        assert r.cmd(line)[0] == code, line
    r.close()


def test_host_sequence(server):
    """RFC 7151 §3: HOST after USER/login -> 503; IP not ours -> 504; syntax -> 501."""
    r = server.raw()
    r.reply()
    assert r.cmd("HOST localhost")[0] == 220
    assert r.cmd("HOST 10.1.1.1")[0] == 504
    assert r.cmd("HOST bad_name")[0] == 501
    r.starttls(server.env.cert)
    assert r.cmd("HOST localhost")[0] == 220
    r.login("alice")
    assert r.cmd("HOST localhost")[0] == 503
    r.close()


def test_feat_opts_mlst(server, env):
    """RFC 2389 §3.2 FEAT grammar; RFC 4217 §6; RFC 3659 §7.9 OPTS MLST ignores unknown facts."""
    _files(env)
    r = server.tls_raw("alice")
    code, lines = r.cmd("FEAT")
    assert code == 211 and lines[0].startswith("211-") and lines[-1] == "211 End"
    assert all(l.startswith(" ") for l in lines[1:-1])
    assert {" AUTH TLS", " PBSZ", " PROT"} <= set(lines)
    assert r.cmd("OPTS MLST type;fish;size;") == (200, ["200 MLST OPTS type;size;"])
    assert r.cmd("MLST audit.bin")[1][1] == " type=file;size=10; /audit.bin"
    assert r.cmd("OPTS MLST type size")[0] == 501
    assert r.cmd("OPTS MLST") == (200, ["200 MLST OPTS"])
    assert r.cmd("MLST audit.bin")[1][1] == "  /audit.bin"      # §7.9: SP SP pathname
    assert r.cmd("OPTS UTF8 ON")[0] == 200
    r.close()


def test_mkd_quote_rnfr_order(server, env):
    """RFC 959 App. II: 257 doubles '"'; §4.1.3 RNFR must be followed by RNTO (503)."""
    _files(env)
    r = server.tls_raw("alice")
    assert r.cmd('MKD auditdir/a"b') == (257, ['257 "/auditdir/a""b" created.'])
    assert r.cmd('RMD auditdir/a"b')[0] == 250
    assert r.cmd("RNFR audit.bin")[0] == 350
    assert r.cmd("NOOP")[0] == 200
    assert r.cmd("RNTO x.bin")[0] == 503
    r.close()


def test_epsv_all_and_eprt_protocols(server):
    """RFC 2428 §2: unknown network protocol -> 522 (use (1)); §4: after EPSV ALL only EPSV."""
    r = server.tls_raw("alice")
    assert r.cmd("EPRT |3|1.2.3.4|5000|") == (522, ["522 Network protocol not supported, use (1)"])
    assert r.cmd("EPSV 3")[0] == 522
    assert r.cmd("EPSV ALL")[0] == 200
    for line in ("PASV", "PORT 127,0,0,1,200,1", "EPRT |1|127.0.0.1|51201|"):
        assert r.cmd(line)[0] == 503, line
    assert r.cmd("EPSV")[0] == 229
    r.close()


def test_rest_retr_range(server, env):
    """RFC 3659 §5.3: REST beyond the end is refused at the transfer command (554)."""
    _files(env)
    r = server.tls_raw("alice", prot=True)
    r.cmd("TYPE I")
    assert r.cmd("EPSV")[0] == 229
    assert r.cmd("REST 11")[0] == 350
    assert r.cmd("RETR audit.bin")[0] == 554
    r.close()


def test_appe_rest_ascii_like_stor(server, env):
    """RFC 3659 §5.3: "If APPE (append) is permitted, it MUST act identically to STOR when a
    restart marker has been set." STOR after REST in TYPE A is refused (554): so is APPE."""
    home = _files(env)
    with open(os.path.join(home, "auditdir", "appe.txt"), "wb") as fh:
        fh.write(b"123")
    os.chown(os.path.join(home, "auditdir", "appe.txt"), USERS["alice"][0], USERS["alice"][0])
    r = server.tls_raw("alice", prot=True)
    assert r.cmd("TYPE A")[0] == 200
    stor = _upload(r, "STOR auditdir/appe.txt", b"x", pre=["REST 2"])[0]
    appe = _upload(r, "APPE auditdir/appe.txt", b"4\r\n5", pre=["REST 2"])[0]
    assert stor == 554 and appe == stor
    with open(os.path.join(home, "auditdir", "appe.txt"), "rb") as fh:
        assert fh.read() == b"123"
    r.close()


def test_stou_reply_names_usable_path(server, env):
    """RFC 1123 §4.1.2.9: "150 FILE: pppp where pppp represents the unique pathname of the file
    that will be written": with STOU dir/name, a bare "name.1" names no file from the cwd."""
    home = _files(env)
    r = server.tls_raw("alice", prot=True)
    r.cmd("TYPE I")
    _upload(r, "STOU auditdir/st", b"one")
    code, lines, fin = _upload(r, "STOU auditdir/st", b"two")
    assert code == 150 and fin[0] == 226
    name = lines[0][len("150 FILE: "):]
    assert r.cmd("SIZE " + name) == (213, ["213 3"]), lines
    r.close()


def _start_slow_retr(r):
    code, l229 = r.cmd("EPSV")
    assert r.cmd("RETR slow.bin")[0] == 150
    d = r.data_connect(l229)
    d.recv(1000)
    return d


@pytest.fixture(scope="module")
def slow(env):
    from ftpsd_fixture import Server
    with open(os.path.join(env.home("alice"), "slow.bin"), "wb") as fh:
        fh.write(b"x" * 3000000)
    s = Server(env, name="slow", max_rate=200000)
    yield s
    s.stop()


@pytest.mark.parametrize("abor", [b"ABOR", b"abor", b"\xff\xf4\xff\xf2ABOR"])
def test_abor_and_stat_during_transfer(slow, abor):
    """RFC 959 §4.1.3: STAT during a transfer answers its status (211/212/213); ABOR -> 426
    then 226; a command sent meanwhile is answered afterwards. RFC 959 §4.1.3 / RFC 4217 §14:
    Telnet IP/DM before ABOR."""
    r = slow.tls_raw("alice", prot=True)
    r.cmd("TYPE I")
    d = _start_slow_retr(r)
    r.send(b"STAT\r\n")
    assert r.reply()[0] in (211, 212, 213)
    r.send(b"NOOP\r\n" + abor + b"\r\n")
    assert [r.reply()[0] for _ in range(3)] == [426, 226, 200]
    d.close()
    assert r.cmd("ABOR")[0] in (225, 226)
    r.close()


def test_abor_with_trailing_space_during_transfer(slow):
    """"ABOR " is ABOR between transfers (the server takes it); during one it must be too,
    or the client waits for the whole transfer."""
    r = slow.tls_raw("alice", prot=True)
    r.cmd("TYPE I")
    d = _start_slow_retr(r)
    t0 = time.time()
    r.send(b"ABOR \r\n")
    assert [r.reply()[0] for _ in range(2)] == [426, 226]
    assert time.time() - t0 < 5
    d.close()
    r.close()


def test_listing_errors(server, env):
    """RFC 3659 §7.2.1: MLSD of a file -> 501, of a missing name -> 550; LIST of a missing
    name: RFC 959 §5.4 lists 450 (550 is common practice)."""
    _files(env)
    r = server.tls_raw("alice", prot=True)
    for line, codes in [("MLSD audit.bin", (501,)), ("MLSD nosuch", (550,)),
                        ("LIST nosuch", (450, 550)), ("NLST nosuch", (450, 550))]:
        assert r.cmd("EPSV")[0] == 229
        assert r.cmd(line)[0] in codes, line
    r.close()


def test_telnet_on_control(server, env):
    """RFC 1123 §4.1.2.12 (options refused or ignored); RFC 3659 §2.2 (IAC IAC is 0xFF and
    goes out doubled)."""
    home = _files(env)
    name = b"n\xffm".decode("utf-8", "surrogateescape")
    with open(os.path.join(home, name), "wb") as fh:
        fh.write(b"ff")
    r = server.tls_raw("alice")
    r.send(b"\xff\xfb\x01NOOP\r\n")
    assert r.reply()[0] == 200
    r.cmd("TYPE I")
    assert r.cmd(b"SIZE n\xff\xffm") == (213, ["213 2"])
    r.send(b"PWD\n")
    assert r.reply()[0] == 257
    r.close()
