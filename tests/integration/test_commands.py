"""RFC 959 / RFC 3659 commands on the control connection after login (rows B, G, X, F, K)."""
import calendar
import io
import os
import shutil
import socket
import ssl
import time
import uuid

import pytest

from ftpsd_fixture import USERS

UID = USERS["alice"][0]




def mkfile(path, data=b"", mtime=None):
    with open(path, "wb") as fh:
        fh.write(data)
    os.chown(path, UID, UID)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def mkdir(path):
    os.mkdir(path)
    os.chown(path, UID, UID)
    return path


def raw_bytes(line):
    """A reply line as the bytes the server sent (RawClient decodes with surrogateescape)."""
    return line.encode("utf-8", "surrogateescape")


def assert_closed(r, limit=5.0):
    r.sock.settimeout(limit)
    data = r.buf
    try:
        while True:
            chunk = r.sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        pass
    except (socket.timeout, TimeoutError):
        pytest.fail("the connection stayed open")
    return data


def mlst_facts(line):
    """' type=file;size=3; /path' -> ({'type': 'file', 'size': '3'}, '/path')."""
    assert line.startswith(" ") and not line.startswith("  "), line
    facts, path = line[1:].split(" ", 1)
    assert facts.endswith(";"), line
    d = {}
    for f in facts[:-1].split(";"):
        k, v = f.split("=", 1)
        d[k.lower()] = v
    return d, path


class Workspace:
    def __init__(self, home, name):
        self.name = name
        self.vpath = "/" + name
        self.path = os.path.join(home, name)

    def p(self, *names):
        return os.path.join(self.path, *names)


@pytest.fixture
def home(env):
    return env.home("alice")


@pytest.fixture
def ws(home):
    """A fresh directory of alice's, so that tests do not see each other's files."""
    w = Workspace(home, "cmd-" + uuid.uuid4().hex[:10])
    mkdir(w.path)
    yield w
    shutil.rmtree(w.path, ignore_errors=True)


@pytest.fixture
def c(server):
    r = server.tls_raw("alice")
    yield r
    r.close()


@pytest.fixture
def cw(c, ws):
    """Logged in as alice, current directory = the workspace."""
    assert c.cmd(f"CWD {ws.vpath}")[0] == 250
    return c


def ftps_client(server):
    """ftplib client whose data connections resume the control TLS session (PROT P)."""
    return server.ftps_reuse("alice")


# --- directories ------------------------------------------------------------------------


def test_pwd_at_root(c):
    assert c.cmd("PWD") == (257, ['257 "/" is the current directory.'])


def test_mkd_cwd_pwd_cdup(cw, ws):
    code, lines = cw.cmd("MKD d")
    assert code == 257 and lines == [f'257 "{ws.vpath}/d" created.'], lines
    assert os.path.isdir(ws.p("d"))
    assert cw.cmd("MKD d")[0] == 550                        # B-41
    assert cw.cmd("CWD d")[0] == 250
    assert cw.cmd("PWD")[1] == [f'257 "{ws.vpath}/d" is the current directory.']
    assert cw.cmd("CDUP")[0] == 250
    assert cw.cmd("PWD")[1] == [f'257 "{ws.vpath}" is the current directory.']
    assert cw.cmd("CDUP")[0] == 250
    assert cw.cmd("PWD")[1] == ['257 "/" is the current directory.']


def test_mkd_at_root_gives_absolute_name(c, home):
    name = "cmd-top-" + uuid.uuid4().hex[:8]
    try:
        assert c.cmd(f"MKD {name}") == (257, [f'257 "/{name}" created.'])
    finally:
        shutil.rmtree(os.path.join(home, name), ignore_errors=True)


def test_mkd_relative_path_is_normalised(cw, ws):
    mkdir(ws.p("d"))
    assert cw.cmd("CWD d")[0] == 250
    assert cw.cmd("MKD ../e/")[1] == [f'257 "{ws.vpath}/e" created.']
    assert cw.cmd("MKD ./f/../g")[0] in (257, 550)
    assert os.path.isdir(ws.p("e"))
    assert cw.cmd(f"CWD //{ws.name}//d/./")[0] == 250
    assert cw.cmd("PWD")[1] == [f'257 "{ws.vpath}/d" is the current directory.']


def test_mkd_missing_parent(cw):
    assert cw.cmd("MKD nope/sub")[0] == 550


def test_cdup_at_root_stays_at_root(c):
    """B-04."""
    assert c.cmd("CDUP")[0] in (200, 250)
    assert c.cmd("PWD")[1] == ['257 "/" is the current directory.']
    assert c.cmd("CWD ..")[0] == 250
    assert c.cmd("PWD")[1] == ['257 "/" is the current directory.']


def test_cwd_errors(cw, ws):
    mkfile(ws.p("file.txt"), b"x")
    assert cw.cmd("CWD missing")[0] == 550                  # B-02
    assert cw.cmd("CWD file.txt")[0] == 550
    assert cw.cmd("CWD")[0] == 501                          # G-09
    assert cw.cmd("PWD")[1] == [f'257 "{ws.vpath}" is the current directory.']


def test_rmd(cw, ws):
    """B-39."""
    mkdir(ws.p("full"))
    mkfile(ws.p("full", "f"), b"x")
    mkdir(ws.p("empty"))
    mkfile(ws.p("plain"), b"x")
    assert cw.cmd("RMD full")[0] == 550
    assert os.path.isdir(ws.p("full"))
    assert cw.cmd("RMD empty")[0] == 250
    assert not os.path.exists(ws.p("empty"))
    assert cw.cmd("RMD missing")[0] == 550
    assert cw.cmd("RMD plain")[0] == 550
    assert os.path.isfile(ws.p("plain"))
    assert cw.cmd("RMD /")[0] == 550


def test_dele(cw, ws):
    """B-38."""
    mkfile(ws.p("f"), b"x")
    mkdir(ws.p("d"))
    assert cw.cmd("DELE f")[0] == 250
    assert not os.path.exists(ws.p("f"))
    assert cw.cmd("DELE f")[0] == 550
    assert cw.cmd("DELE missing/f")[0] == 550
    assert cw.cmd("DELE d")[0] == 550
    assert os.path.isdir(ws.p("d"))


def test_x_commands(cw, ws):
    """B-54: XMKD, XCWD, XPWD, XCUP, XRMD behave as MKD, CWD, PWD, CDUP, RMD."""
    assert cw.cmd("XMKD x")[1] == [f'257 "{ws.vpath}/x" created.']
    assert cw.cmd("XCWD x")[0] == 250
    assert cw.cmd("XPWD")[1] == [f'257 "{ws.vpath}/x" is the current directory.']
    assert cw.cmd("XCUP")[0] == 250
    assert cw.cmd("XRMD x")[0] == 250
    assert not os.path.exists(ws.p("x"))


# --- rename -------------------------------------------------------------------------------


def test_rename(cw, ws):
    """B-32, B-33."""
    mkfile(ws.p("old"), b"content")
    assert cw.cmd("RNFR missing")[0] == 550
    assert cw.cmd("RNFR old")[0] == 350
    assert cw.cmd("RNTO new")[0] == 250
    assert not os.path.exists(ws.p("old"))
    with open(ws.p("new"), "rb") as fh:
        assert fh.read() == b"content"


def test_rename_directory_and_across_directories(cw, ws):
    mkdir(ws.p("d1"))
    mkdir(ws.p("d2"))
    mkfile(ws.p("d1", "f"), b"1")
    assert cw.cmd("RNFR d1/f")[0] == 350
    assert cw.cmd(f"RNTO {ws.vpath}/d2/g")[0] == 250
    assert os.path.isfile(ws.p("d2", "g"))
    assert cw.cmd("RNFR d1")[0] == 350
    assert cw.cmd("RNTO d3")[0] == 250
    assert os.path.isdir(ws.p("d3"))


def test_rnto_without_rnfr(cw, ws):
    """B-34 / G-11."""
    mkfile(ws.p("old"), b"x")
    assert cw.cmd("RNTO new")[0] == 503
    # Another command between RNFR and RNTO disarms the RNTO.
    assert cw.cmd("RNFR old")[0] == 350
    assert cw.cmd("NOOP")[0] == 200
    assert cw.cmd("RNTO new")[0] == 503
    assert os.path.exists(ws.p("old")) and not os.path.exists(ws.p("new"))
    # A failed RNFR does not arm RNTO either.
    assert cw.cmd("RNFR missing")[0] == 550
    assert cw.cmd("RNTO new")[0] == 503
    assert not os.path.exists(ws.p("new"))


def test_rnto_into_missing_directory(cw, ws):
    """B-35: a target name that cannot be used gets 553."""
    mkfile(ws.p("old"), b"x")
    assert cw.cmd("RNFR old")[0] == 350
    assert cw.cmd("RNTO nodir/new")[0] == 553
    assert os.path.exists(ws.p("old"))


# RFC 959 gives 553, "file name not allowed", to the commands that create a name; to the others
# a name too long names nothing: 550.
NAMING = [("CWD", 550), ("RMD", 550), ("MKD", 550), ("DELE", 550), ("SIZE", 550), ("MDTM", 550),
          ("MLST", 550), ("RNFR", 550), ("SITE CHMOD 644", 550), ("MFMT 20240101000000", 550),
          ("RNTO", 553)]
TRANSFERS = [("RETR", 550), ("STOR", 553), ("APPE", 553), ("STOU", 553)]


def name_too_long(r, cmd, code, name):
    if cmd == "RNTO":
        assert r.cmd("RNFR old")[0] == 350
    if cmd in dict(TRANSFERS):
        assert r.cmd("EPSV")[0] == 229
    got, lines = r.cmd(f"{cmd} {name}")
    assert got == code, lines
    assert "too long" in lines[-1], lines


@pytest.mark.parametrize("cmd,code", NAMING + TRANSFERS)
def test_component_too_long(cw, ws, cmd, code):
    """A 300-byte name: longer than a file system takes."""
    mkfile(ws.p("old"), b"x")
    assert cw.cmd("PBSZ 0")[0] == 200 and cw.cmd("PROT P")[0] == 200
    name_too_long(cw, cmd, code, "n" * 300)


def test_path_too_long(make_server, env):
    """A 5,000-byte path (max_line_length allows it here): longer than the server takes."""
    s = make_server(max_line_length=8192)
    r = s.tls_raw("alice", prot=True)
    mkfile(os.path.join(env.home("alice"), "old"), b"x")
    for cmd, code in NAMING + TRANSFERS:
        name_too_long(r, cmd, code, "/".join(["p" * 200] * 25))
    r.close()
    os.unlink(os.path.join(env.home("alice"), "old"))


# --- SIZE, MDTM, MLST -------------------------------------------------------------------


def test_size(cw, ws):
    """X-01..X-04."""
    mkfile(ws.p("f"), b"a\nb\n" * 3000 + b"z")
    mkdir(ws.p("d"))
    assert cw.cmd("TYPE I")[0] == 200
    assert cw.cmd("SIZE f") == (213, ["213 12001"])
    assert cw.cmd(f"SIZE {ws.vpath}/f") == (213, ["213 12001"])
    assert cw.cmd("SIZE missing")[0] == 550
    assert cw.cmd("SIZE d")[0] == 550
    assert cw.cmd("SIZE")[0] == 501
    assert cw.cmd("TYPE A")[0] == 200
    assert cw.cmd("SIZE f")[0] == 550                        # declined in ASCII mode
    assert cw.cmd("TYPE L 8")[0] == 200
    assert cw.cmd("SIZE f") == (213, ["213 12001"])


def test_size_of_empty_file(cw, ws):
    mkfile(ws.p("empty"), b"")
    assert cw.cmd("TYPE I")[0] == 200
    assert cw.cmd("SIZE empty") == (213, ["213 0"])


def test_mdtm(cw, ws):
    """X-05, X-06: UTC, YYYYMMDDHHMMSS."""
    t = calendar.timegm((2023, 11, 14, 22, 13, 20, 0, 0, 0))
    mkfile(ws.p("f"), b"x", mtime=t)
    assert cw.cmd("MDTM f") == (213, ["213 20231114221320"])
    # A file with its current mtime: the reply is that instant in UTC.
    mkfile(ws.p("g"), b"y")
    m = int(os.stat(ws.p("g")).st_mtime)
    assert cw.cmd("MDTM g") == (213, ["213 " + time.strftime("%Y%m%d%H%M%S", time.gmtime(m))])
    assert cw.cmd("MDTM missing")[0] == 550


def test_mlst_file(cw, ws):
    """X-15."""
    t = calendar.timegm((2024, 1, 2, 3, 4, 5, 0, 0, 0))
    mkfile(ws.p("f.txt"), b"12345", mtime=t)
    code, lines = cw.cmd("MLST f.txt")
    assert code == 250, lines
    assert len(lines) == 3, lines
    assert lines[0].startswith("250-"), lines
    assert lines[2] == "250 End", lines
    facts, path = mlst_facts(lines[1])
    assert path == f"{ws.vpath}/f.txt"
    assert facts["type"] == "file"
    assert facts["size"] == "5"
    assert facts["modify"] == "20240102030405"
    # alice owns the file and may write the directory: append, delete, rename, read, write.
    assert sorted(facts["perm"]) == sorted("adfrw"), facts


def test_mlst_without_argument_is_current_directory(cw, ws):
    """X-16."""
    code, lines = cw.cmd("MLST")
    assert code == 250 and lines[-1] == "250 End", lines
    facts, path = mlst_facts(lines[1])
    assert path == ws.vpath
    assert facts["type"] in ("dir", "cdir")
    assert "size" not in facts or facts["size"].isdigit()


def test_mlst_missing(cw):
    """X-17."""
    assert cw.cmd("MLST missing")[0] == 550


def test_mlst_name_with_semicolon(cw, ws):
    mkfile(ws.p("semi;colon.txt"), b"abc")
    code, lines = cw.cmd("MLST semi;colon.txt")
    assert code == 250, lines
    facts, path = mlst_facts(lines[1])
    assert path == f"{ws.vpath}/semi;colon.txt", lines
    assert facts["type"] == "file" and facts["size"] == "3", lines


def test_opts_mlst_selects_facts(cw, ws):
    """X-27, X-28, X-29."""
    mkfile(ws.p("f"), b"abc")
    assert cw.cmd("OPTS MLST type;size;") == (200, ["200 MLST OPTS type;size;"])
    code, lines = cw.cmd("MLST f")
    assert lines[1] == f" type=file;size=3; {ws.vpath}/f", lines
    # A syntax error (space inside the list) is refused and changes nothing.
    assert cw.cmd("OPTS MLST type size;")[0] == 501
    assert cw.cmd("MLST f")[1][1] == f" type=file;size=3; {ws.vpath}/f"
    # Unknown facts are dropped silently; case does not matter.
    assert cw.cmd("OPTS MLST Size;nosuchfact;TYPE;") == (200, ["200 MLST OPTS type;size;"])
    # No facts at all: the entry is just SP pathname.
    assert cw.cmd("OPTS MLST") == (200, ["200 MLST OPTS"])
    assert cw.cmd("MLST f")[1][1] == f"  {ws.vpath}/f"


# --- TYPE, STRU, MODE, REST and the simple commands -------------------------------------


@pytest.mark.parametrize("arg,code", [
    ("A", 200), ("A N", 200), ("I", 200), ("L 8", 200), ("a", 200), ("i", 200), ("l 8", 200),
    ("A T", 504), ("A C", 504), ("E", 504), ("E N", 504), ("L 7", 504), ("X", 501),
    ("L", 501), ("A  N", 501), ("A X", 501), ("I N", 501), ("L x", 501), ("A N x", 501),
])
def test_type(c, arg, code):
    """B-16, B-17: what RFC 959's grammar allows but ftpsd does not do is 504; what it does not
    allow (L without a byte size, a doubled space, an unknown form) is a syntax error, 501
    (those were 504)."""
    assert c.cmd(f"TYPE {arg}")[0] == code


def test_type_without_argument(c):
    assert c.cmd("TYPE")[0] == 501


@pytest.mark.parametrize("arg,code", [("F", 200), ("f", 200), ("R", 504), ("P", 504)])
def test_stru(c, arg, code):
    assert c.cmd(f"STRU {arg}")[0] == code


@pytest.mark.parametrize("arg,code", [("S", 200), ("s", 200), ("B", 504), ("C", 504)])
def test_mode(c, arg, code):
    assert c.cmd(f"MODE {arg}")[0] == code


@pytest.mark.parametrize("arg,code", [("100", 350), ("0", 350), ("abc", 501), ("-1", 501),
                                      ("1x", 501), ("", 501)])
def test_rest(c, arg, code):
    """B-31, X-08, X-10, X-12."""
    assert c.cmd(f"REST {arg}".rstrip())[0] == code


def test_simple_commands(c):
    assert c.cmd("NOOP") == (200, ["200 NOOP ok."])
    assert c.cmd("SYST") == (215, ["215 UNIX Type: L8"])
    assert c.cmd("XYZZY")[0] == 500                         # G-07
    assert c.cmd("SMNT /x")[0] == 502                       # G-08 / B-05
    assert c.cmd("ALLO 1000")[0] in (200, 202)              # B-30
    assert c.cmd("ALLO 1000 R 100")[0] in (200, 202)
    for bad in ("ALLO x", "ALLO 10 R", "ALLO 10 X 5", "ALLO -1"):
        assert c.cmd(bad)[0] == 501, bad                    # was 202 whatever followed
    assert c.cmd("ACCT x")[0] in (202, 230)                 # L-12
    assert c.cmd("ABOR")[0] in (225, 226)                   # B-36
    assert c.cmd("NOOP x")[0] == 501
    assert c.cmd("PWD x")[0] == 501


def test_help(c):
    """B-52."""
    code, lines = c.cmd("HELP")
    assert code == 214 and len(lines) > 2, lines
    assert lines[0].startswith("214-") and lines[-1].startswith("214 "), lines
    body = " ".join(lines[1:-1]).split()
    for verb in ("RETR", "STOR", "LIST", "PASV", "EPSV", "AUTH", "PBSZ", "PROT", "MLST"):
        assert verb in body, lines
    assert c.cmd("HELP RETR")[0] == 214
    assert c.cmd("help retr")[0] == 214


def test_stat_without_argument(c):
    code, lines = c.cmd("STAT")
    assert code == 211 and lines[0].startswith("211-") and lines[-1].startswith("211 "), lines
    assert any("alice" in l for l in lines), lines


def test_lower_case_verbs(cw, ws):
    """G-06."""
    mkfile(ws.p("f"), b"abc")
    assert cw.cmd("noop")[0] == 200
    assert cw.cmd("pwd")[1] == [f'257 "{ws.vpath}" is the current directory.']
    assert cw.cmd("type i")[0] == 200
    assert cw.cmd("size f") == (213, ["213 3"])
    assert cw.cmd("mkd sub")[0] == 257
    assert cw.cmd("CwD sub")[0] == 250
    assert cw.cmd("cdup")[0] == 250
    assert cw.cmd("rmd sub")[0] == 250
    assert cw.cmd("syst")[0] == 215


# --- before login --------------------------------------------------------------------------


PRELOGIN_REFUSED = ["RETR f", "STOR f", "APPE f", "LIST", "NLST", "MLSD", "CWD /", "CDUP",
                    "PASV", "EPSV", "PORT 127,0,0,1,4,1", "MKD d", "RMD d", "DELE f", "RNFR f",
                    "SIZE f", "MDTM f", "MLST", "PWD", "TYPE I", "REST 0", "STRU F", "MODE S",
                    "ALLO 10"]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_before_login_refused(server, tls):
    """G-12: file and data commands before login get 530."""
    r = server.raw()
    r.reply()
    if tls:
        r.starttls(server.env.cert)
        assert r.cmd("USER alice")[0] == 331   # USER alone is not a login
    bad = {}
    for line in PRELOGIN_REFUSED:
        code, lines = r.cmd(line)
        if code != 530:
            bad[line] = lines
    assert not bad, bad
    r.close()


def test_before_login_allowed(server):
    """G-13: these work before AUTH and before login."""
    r = server.raw()
    r.reply()
    assert r.cmd("FEAT")[0] == 211
    assert r.cmd("NOOP")[0] == 200
    assert r.cmd("SYST")[0] == 215
    assert r.cmd("HELP")[0] == 214
    assert r.cmd("OPTS UTF8 ON")[0] == 200
    assert r.cmd("STAT")[0] == 211
    # Extensions lftp sends before USER are not refused with "please login".
    for line, want in (("CLNT test-client", 200), ("HOST localhost", 220), ("LANG", 200)):
        assert r.cmd(line)[0] == want, line
    assert r.cmd("QUIT")[0] == 221
    assert_closed(r)
    r.close()


def test_acct_before_login(server):
    r = server.tls_raw()
    assert r.cmd("ACCT x")[0] == 503
    r.close()


# --- OPTS ----------------------------------------------------------------------------------


def test_opts(c):
    """F-07..F-09."""
    assert c.cmd("OPTS UTF8 ON")[0] == 200
    assert c.cmd("opts utf8 on")[0] == 200
    assert c.cmd("OPTS MLST type;size;") == (200, ["200 MLST OPTS type;size;"])
    assert c.cmd("OPTS FOO")[0] == 501
    assert c.cmd("OPTS FOO x")[0] == 501
    assert c.cmd("OPTS FEAT")[0] == 501
    assert c.cmd("OPTS OPTS")[0] == 501
    assert c.cmd("OPTS")[0] == 501


# --- line handling -------------------------------------------------------------------------


def test_long_line_then_noop(c):
    """G-15: a 10 000-byte line gets 500; the connection stays usable."""
    c.send(b"X" * 10000 + b"\r\n")
    assert c.reply()[0] == 500
    assert c.cmd("NOOP") == (200, ["200 NOOP ok."])


def test_long_line_tail_never_runs(cw, ws):
    """G-15: whatever the length, the end of an overlong line is discarded, never run."""
    lengths = [4090, 4094, 4096, 4097, 4098, 4099, 8190, 8192, 8196, 16384, 20000]
    for n in lengths:
        cw.send(b"A" * n + f"MKD pwned{n}\r\n".encode())
    codes = [cw.reply()[0] for _ in lengths]
    assert codes == [500] * len(lengths), codes
    assert cw.cmd("NOOP")[0] == 200
    assert not [f for f in os.listdir(ws.path) if f.startswith("pwned")]


def test_line_length_limit_is_4096(cw):
    """The default max_line_length: 4096 bytes are accepted (RFC says at least that), 4097 not."""
    code, lines = cw.cmd("MDTM " + "a" * 4091)      # 4096 bytes without CRLF
    assert code != 500 and code >= 500, lines      # a file-name error, not "too long"
    assert cw.cmd("MDTM " + "a" * 4092)[0] == 500
    assert cw.cmd("NOOP")[0] == 200


def test_bare_lf(c):
    """G-14: LF alone ends a line; replies still end with CRLF."""
    c.send(b"NOOP\n")
    data = b""
    while not data.endswith(b"\n"):
        data += c.sock.recv(4096)
    assert data == b"200 NOOP ok.\r\n"
    c.send(b"PWD\nNOOP\r\n")
    assert c.reply()[0] == 257
    assert c.reply()[0] == 200


def test_nul_in_argument(cw, ws):
    """K-14: a NUL never truncates a name."""
    assert cw.cmd(b"MKD evil\x00tail")[0] == 501
    assert cw.cmd(b"CWD a\x00b")[0] == 501
    assert not os.path.exists(ws.p("evil"))
    assert cw.cmd(b"NO\x00OP")[0] == 500
    assert cw.cmd("NOOP")[0] == 200


def test_cr_nul_in_name(cw, ws):
    """G-22: CR NUL in a pathname is a CR; a CR in a reply is sent as CR NUL. A new name with a
    CR is refused (a listing could not show it), the name echoed padded; an existing one is
    reached by its name, and PWD pads it."""
    code, lines = cw.cmd(b"MKD cr\r\x00x")
    assert code == 553, lines
    assert raw_bytes(lines[0]) == b"553 cr\r\x00x: File names may not contain CR or LF."
    assert not os.path.exists(ws.p("cr\rx"))
    os.mkdir(ws.p("cr\rx"))
    assert cw.cmd(b"CWD cr\r\x00x")[0] == 250
    code, lines = cw.cmd("PWD")
    assert raw_bytes(lines[0]).startswith(f'257 "{ws.vpath}/cr\r\x00x"'.encode()), lines


def test_iac_in_name(cw, ws):
    """G-17, G-20: IAC IAC is one 0xFF byte of the name; a 0xFF in a reply is doubled."""
    code, lines = cw.cmd(b"MKD ff\xff\xffx")
    assert code == 257, lines
    assert os.path.isdir(os.path.join(os.fsencode(ws.path), b"ff\xffx"))
    assert raw_bytes(lines[0]) == f'257 "{ws.vpath}/ff'.encode() + b'\xff\xffx" created.'


def test_telnet_negotiation_ignored(c):
    """G-18, G-19: IAC WILL/DO/IP/DM are dropped, the command runs, no IAC is sent back."""
    c.send(b"\xff\xfb\x01NOOP\r\n")
    assert c.reply() == (200, ["200 NOOP ok."])
    c.send(b"\xff\xfd\x03NOOP\r\n")
    assert c.reply() == (200, ["200 NOOP ok."])
    c.send(b"\xff\xf4\xff\xf2NOOP\r\n")
    assert c.reply() == (200, ["200 NOOP ok."])
    assert b"\xff" not in c.buf


# --- file names ---------------------------------------------------------------------------


def test_names_with_spaces(cw, ws):
    """G-21: exactly one SP after the verb; leading and trailing spaces belong to the name."""
    assert cw.cmd("MKD a b")[1] == [f'257 "{ws.vpath}/a b" created.']
    assert os.path.isdir(ws.p("a b"))
    assert cw.cmd("MKD  lead")[1] == [f'257 "{ws.vpath}/ lead" created.']
    assert os.path.isdir(ws.p(" lead"))
    assert cw.cmd("MKD trail ")[0] == 257
    assert os.path.isdir(ws.p("trail "))
    assert cw.cmd("CWD a b")[0] == 250
    assert cw.cmd("PWD")[1] == [f'257 "{ws.vpath}/a b" is the current directory.']


def test_stor_name_with_leading_spaces(server, ws):
    """G-21 through ftplib: "STOR   lead.txt" stores "  lead.txt"."""
    f = ftps_client(server)
    try:
        f.cwd(ws.vpath)
        f.storbinary("STOR   lead.txt", io.BytesIO(b"leading spaces\n"))
        assert os.path.isfile(ws.p("  lead.txt"))
        assert not os.path.exists(ws.p("lead.txt"))
        assert "  lead.txt" in f.nlst()
        got = io.BytesIO()
        f.retrbinary("RETR   lead.txt", got.write)
        assert got.getvalue() == b"leading spaces\n"
        f.quit()
    finally:
        f.close()


def test_utf8_names(server, cw, ws):
    """RFC 2640: UTF-8 names come back byte for byte."""
    name = "dïr-ünï-日本語-😀"
    code, lines = cw.cmd(b"MKD " + name.encode())
    assert code == 257, lines
    assert raw_bytes(lines[0]) == f'257 "{ws.vpath}/{name}" created.'.encode()
    assert os.path.isdir(ws.p(name))
    mkfile(ws.p("fïlé-€.txt"), b"x")
    f = ftps_client(server)
    try:
        f.cwd(ws.vpath)
        names = f.nlst()
        assert name in names and "fïlé-€.txt" in names, names
        f.cwd(name)
        assert f.pwd() == f"{ws.vpath}/{name}"
        f.quit()
    finally:
        f.close()


def test_quote_in_directory_name(server, cw, ws):
    """B-40, B-43: a quote in the path is doubled in 257 replies."""
    assert cw.cmd('MKD q"d') == (257, [f'257 "{ws.vpath}/q""d" created.'])
    assert os.path.isdir(ws.p('q"d'))
    assert cw.cmd('CWD q"d')[0] == 250
    assert cw.cmd("PWD") == (257, [f'257 "{ws.vpath}/q""d" is the current directory.'])
    f = ftps_client(server)
    try:
        f.cwd(f'{ws.vpath}/q"d')
        assert f.pwd() == f'{ws.vpath}/q"d'       # ftplib's parse257 undoes the doubling
        f.quit()
    finally:
        f.close()


# --- write_enable = no ----------------------------------------------------------------------


def test_write_disabled(make_server, ws):
    s = make_server(write_enable="no")
    mkfile(ws.p("f"), b"keep")
    mkdir(ws.p("d"))
    r = s.tls_raw("alice")
    assert r.cmd(f"CWD {ws.vpath}")[0] == 250
    assert r.cmd("MKD new")[0] == 550
    assert r.cmd("RMD d")[0] == 550
    assert r.cmd("DELE f")[0] == 550
    assert r.cmd("RNFR f")[0] == 550
    assert r.cmd("RNTO g")[0] == 503
    assert r.cmd("PBSZ 0")[0] == 200
    assert r.cmd("PROT P")[0] == 200
    for verb in ("STOR new", "APPE f", "STOR f"):
        assert r.cmd("PASV")[0] == 227
        code, lines = r.cmd(verb)
        assert code == 550, (verb, lines)
    assert sorted(os.listdir(ws.path)) == ["d", "f"]
    with open(ws.p("f"), "rb") as fh:
        assert fh.read() == b"keep"
    # Reading still works.
    assert r.cmd("TYPE I")[0] == 200
    assert r.cmd("SIZE f") == (213, ["213 4"])
    # the perm fact shows what this user can really do here, i.e. no writing.
    facts, _ = mlst_facts(r.cmd("MLST f")[1][1])
    assert facts["perm"] == "r", facts
    facts, _ = mlst_facts(r.cmd("MLST d")[1][1])
    assert sorted(facts["perm"]) == sorted("el"), facts
    r.close()


def test_umask(make_server, ws):
    s = make_server(umask="077")
    r = s.tls_raw("alice")
    assert r.cmd(f"MKD {ws.vpath}/private")[0] == 257
    assert os.stat(ws.p("private")).st_mode & 0o777 == 0o700
    r.close()


def test_no_access_below_unsearchable_directory(cw, ws):
    os.mkdir(ws.p("locked"), 0o000)   # owned by root: alice has no search permission
    assert cw.cmd("MKD locked/x")[0] == 550
    assert cw.cmd("CWD locked/sub")[0] == 550
    assert cw.cmd("MLST locked/x")[0] == 550
    assert not os.path.exists(ws.p("locked", "x"))


def test_cwd_into_unsearchable_directory(cw, ws):
    """chdir(2) semantics: entering a directory needs search (x) permission on it."""
    os.mkdir(ws.p("locked"), 0o000)   # owned by root: alice may not enter
    code, lines = cw.cmd("CWD locked")
    assert code == 550, lines
    assert cw.cmd("PWD")[1] == [f'257 "{ws.vpath}" is the current directory.']


def test_max_line_length_setting(make_server):
    s = make_server(max_line_length=512)
    r = s.tls_raw("alice")
    assert r.cmd("MDTM " + "a" * 507)[0] not in (200, 500)   # 512 bytes: accepted
    assert r.cmd("MDTM " + "a" * 508)[0] == 500               # 513 bytes: too long
    assert r.cmd("NOOP")[0] == 200
    r.close()


# --- confinement ---------------------------------------------------------------------------


def visible_names(home):
    return {n for n in os.listdir(home) if not n.startswith(".")}


def nlst_at(server, path):
    f = ftps_client(server)
    try:
        f.cwd(path)
        names = f.nlst()
        listing = []
        f.retrlines("LIST", listing.append)
        f.quit()
        return set(names), listing
    finally:
        f.close()


def retr_refused(r, path):
    """RETR answered before any data connection is used: returns the reply code."""
    assert r.cmd("PASV")[0] == 227
    return r.cmd(f"RETR {path}")[0]


def prot_p(r):
    assert r.cmd("PBSZ 0")[0] == 200
    assert r.cmd("PROT P")[0] == 200


def test_chroot_dotdot(server, c, home):
    """K-13: ".." never leaves the user's root."""
    assert c.cmd("CWD ../../..")[0] == 250
    assert c.cmd("PWD")[1] == ['257 "/" is the current directory.']
    assert c.cmd("CWD /../../../..")[0] == 250
    assert c.cmd("PWD")[1] == ['257 "/" is the current directory.']
    prot_p(c)
    assert retr_refused(c, "../../etc/passwd") == 550
    assert retr_refused(c, "/../../../../etc/passwd") == 550
    assert retr_refused(c, "/etc/passwd") == 550
    assert c.cmd("TYPE I")[0] == 200
    assert c.cmd("SIZE ../../../../etc/passwd")[0] == 550
    assert c.cmd("MDTM ../../../../etc/hostname")[0] == 550
    if not os.path.exists(os.path.join(home, "etc")):
        assert c.cmd("CWD /etc")[0] == 550
        assert c.cmd("MLST /etc/passwd")[0] == 550
    names, listing = nlst_at(server, "../../..")
    assert names == visible_names(home)
    assert len([l for l in listing if l.strip()]) == len(names), listing


@pytest.fixture
def outside(env):
    """A directory outside alice's root that alice herself could write, with a file in it."""
    d = env.path("outside-" + uuid.uuid4().hex[:8])
    mkdir(d)
    os.chmod(d, 0o777)
    mkfile(os.path.join(d, "secret"), b"outside")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def escape_links(home, outside):
    """Symlinks placed in alice's root that point outside it, and a marker file inside."""
    marker = "marker-" + uuid.uuid4().hex[:8]
    made = {
        "etclink": "/etc",                  # absolute, to a directory outside
        "pwlink": "/etc/passwd",            # absolute, to a file outside
        "uplink": "../../../../",           # relative, climbing out
        "uppw": "../../../../../../etc/passwd",
        "outlink": outside,                 # absolute, to a directory alice may write
        "outrel": "../../" + os.path.basename(outside),   # the same, relative
        "inlink": marker,                   # inside the root: allowed
    }
    for name, target in made.items():
        p = os.path.join(home, name)
        if os.path.lexists(p):
            os.unlink(p)
        os.symlink(target, p)
        os.lchown(p, UID, UID)
    mkfile(os.path.join(home, marker), b"inside")
    yield marker
    for name in made:
        try:
            os.unlink(os.path.join(home, name))
        except FileNotFoundError:
            pass
    os.unlink(os.path.join(home, marker))


def check_links_confined(s, home, marker, outside):
    r = s.tls_raw("alice")
    prot_p(r)
    assert r.cmd("TYPE I")[0] == 200
    # A link inside the root works...
    assert r.cmd("SIZE inlink") == (213, ["213 6"])
    # ...links out of it do not reach the real file system, for writing either.
    for link in ("outlink", "outrel"):
        assert r.cmd(f"SIZE {link}/secret")[0] == 550, link
        assert r.cmd(f"MKD {link}/made")[0] == 550, link
        assert r.cmd(f"DELE {link}/secret")[0] == 550, link
        assert r.cmd(f"RNFR {link}/secret")[0] == 550, link
        assert r.cmd(f"RNFR {marker}")[0] == 350
        assert r.cmd(f"RNTO {link}/stolen")[0] in (550, 553), link
        assert r.cmd(f"RMD {link}")[0] == 550, link     # a symlink is not a directory to remove
        assert r.cmd(f"CWD {link}")[0] in (250, 550), link
        assert r.cmd("CWD /")[0] == 250
    assert sorted(os.listdir(outside)) == ["secret"]
    with open(os.path.join(outside, "secret"), "rb") as fh:
        assert fh.read() == b"outside"
    assert os.path.isfile(os.path.join(home, marker))
    for path in ("etclink/passwd", "pwlink", "uppw", "uplink/etc/passwd", "etclink/hostname",
                 "outlink/secret", "outrel/secret"):
        assert retr_refused(r, path) == 550, path
        assert r.cmd(f"SIZE {path}")[0] == 550, path
        code, lines = r.cmd(f"MLST {path}")
        if "/" in path:
            assert code == 550, (path, lines)
        elif code == 250:
            # The dangling link itself may be described, never its target outside.
            facts, _ = mlst_facts(lines[1])
            assert facts["type"].lower().startswith("os.unix=slink"), lines
        else:
            assert code == 550, (path, lines)
    code, _ = r.cmd("CWD etclink")
    if code == 250:
        # Resolved inside the root (there is no etc there): must not be the real /etc.
        assert r.cmd("SIZE passwd")[0] == 550
        assert r.cmd("SIZE hostname")[0] == 550
    else:
        assert code == 550
    assert r.cmd("CWD /")[0] == 250
    code, _ = r.cmd("CWD uplink")
    if code == 250:
        # "../../../../" resolves to the root itself.
        assert r.cmd(f"SIZE {marker}") == (213, ["213 6"])
        assert r.cmd("SIZE etc/passwd")[0] == 550
    else:
        assert code == 550
    r.close()
    names, listing = nlst_at(s, "/uplink") if code == 250 else nlst_at(s, "/")
    assert names == visible_names(home)
    assert not any("root:" in l for l in listing)


def test_symlinks_stay_inside_root(server, home, escape_links, outside):
    """K-13 with symlinks planted in the user's root (chroot = yes)."""
    check_links_confined(server, home, escape_links, outside)


def test_symlinks_stay_inside_root_without_chroot(make_server, env, home, escape_links, outside):
    """chroot = no: only openat2(RESOLVE_IN_ROOT) confines the paths."""
    s = make_server(chroot="no", root_dir=env.homes + "/%u")
    check_links_confined(s, home, escape_links, outside)
    r = s.tls_raw("alice")
    assert r.cmd("PWD")[1] == ['257 "/" is the current directory.']
    assert r.cmd("CWD ../../../..")[0] == 250
    assert r.cmd("PWD")[1] == ['257 "/" is the current directory.']
    assert r.cmd("CWD /etc")[0] == 550
    r.close()


@pytest.fixture
def outside_file_links(env, home, outside):
    """Symlinks in alice's root to a file outside it that alice owns (so she could change it)."""
    target = os.path.join(outside, "secret")
    t0 = calendar.timegm((2023, 11, 14, 22, 13, 20, 0, 0, 0))
    os.utime(target, (t0, t0))
    links = {"abs-secret": target, "rel-secret": "../../" + os.path.basename(outside) + "/secret"}
    for name, to in links.items():
        p = os.path.join(home, name)
        if os.path.lexists(p):
            os.unlink(p)
        os.symlink(to, p)
    yield target, t0, list(links)
    for name in links:
        os.unlink(os.path.join(home, name))


@pytest.mark.parametrize("chroot", [
    "yes",
    "no",
])
def test_set_time_does_not_follow_links_out_of_root(make_server, env, outside_file_links, chroot):
    target, t0, links = outside_file_links
    s = make_server(chroot=chroot, root_dir=env.homes + "/%u")
    r = s.tls_raw("alice")
    for name in links:
        for cmd in (f"MFMT 20000101000000 {name}", f"MDTM 20010101000000 {name}"):
            code, lines = r.cmd(cmd)
            assert code in (213, 500, 501, 502, 550, 553), (cmd, lines)
    r.close()
    assert int(os.stat(target).st_mtime) == t0, "the mtime of a file outside the root changed"


@pytest.mark.parametrize("chroot", [
    "yes",
    "no",
])
def test_perm_fact_reveals_nothing_outside_root(make_server, env, home, chroot):
    links = {"l-readable": "/etc/passwd", "l-missing": "/nonexistent-" + uuid.uuid4().hex[:6]}
    for name, to in links.items():
        p = os.path.join(home, name)
        if os.path.lexists(p):
            os.unlink(p)
        os.symlink(to, p)
    try:
        s = make_server(chroot=chroot, root_dir=env.homes + "/%u")
        r = s.tls_raw("alice")
        perms = {}
        for name in links:
            code, lines = r.cmd(f"MLST {name}")
            assert code == 250, lines
            perms[name] = mlst_facts(lines[1])[0].get("perm")
        r.close()
        # Both resolve to nothing inside the root: they must look the same.
        assert perms["l-readable"] == perms["l-missing"], perms
    finally:
        for name in links:
            os.unlink(os.path.join(home, name))


# --- QUIT ----------------------------------------------------------------------------------


def test_quit(server):
    """B-07 / G-27: 221, then the TLS close_notify, then the close."""
    r = server.raw()
    assert r.reply()[0] == 220
    assert r.cmd("AUTH TLS")[0] == 234
    ctx = ssl.create_default_context(cafile=server.env.cert)
    ctx.check_hostname = False
    r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost", suppress_ragged_eofs=False)
    r.login("alice")
    assert r.cmd("QUIT") == (221, ["221 Goodbye."])
    r.sock.settimeout(5)
    try:
        assert r.sock.recv(4096) == b""      # close_notify: a clean end of the TLS stream
    except ssl.SSLEOFError:
        pytest.fail("the server closed without a TLS close_notify after 221")
    r.close()


def test_quit_before_login_plaintext(server):
    r = server.raw()
    assert r.reply()[0] == 220
    assert r.cmd("QUIT")[0] == 221
    assert assert_closed(r) == b""


def test_nothing_runs_after_quit(cw, ws):
    cw.send(b"QUIT\r\nMKD after-quit\r\n")
    assert cw.reply()[0] == 221
    assert assert_closed(cw) == b""
    time.sleep(0.2)
    assert not os.path.exists(ws.p("after-quit"))


# --- root_dir ------------------------------------------------------------------------------


def test_root_dir_containing_homes_starts_in_home(make_server, env, home):
    """ftpsd.conf(5): the session starts in the home directory when it lies inside the root."""
    s = make_server(root_dir=env.homes)
    r = s.tls_raw("alice")
    assert r.cmd("PWD")[1] == ['257 "/alice" is the current directory.']
    assert r.cmd("CDUP")[0] == 250
    assert r.cmd("PWD")[1] == ['257 "/" is the current directory.']
    assert r.cmd("CWD ..")[0] == 250
    assert r.cmd("PWD")[1] == ['257 "/" is the current directory.']
    assert r.cmd("CWD /bob")[0] == 250
    r.close()


def test_root_dir_outside_home_starts_at_root(make_server, env):
    other = env.path("other-root-" + uuid.uuid4().hex[:6])
    mkdir(other)
    try:
        s = make_server(root_dir=other)
        r = s.tls_raw("alice")
        assert r.cmd("PWD")[1] == ['257 "/" is the current directory.']
        assert r.cmd("MKD made-here")[0] == 257
        assert os.path.isdir(os.path.join(other, "made-here"))
        r.close()
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_stat_before_login_claims_no_login(server):
    r = server.tls_raw()
    assert r.cmd("USER alice")[0] == 331
    code, lines = r.cmd("STAT")
    assert code == 211
    assert not any("Logged in as alice" in l for l in lines), lines
    r.close()


def test_listing_lines_cannot_be_forged(server, ws):
    """A name with CR/LF is left out of listings (it would forge entries), and a symlink target
    that a fact value cannot carry (";", space, CR/LF) is not printed into MLSD's type fact nor,
    with CR/LF, after LIST's "->"."""
    mkfile(os.path.join(ws.path, "evil\r\n-rw-r--r-- 1 root root 0 Jan 01 2000 fake"))
    mkfile(os.path.join(ws.path, "evil2\nfake2"))
    mkfile(os.path.join(ws.path, "plain"))
    for name, target in (("semi", "a;type=file;size=1; fake3"), ("space", "x y"),
                         ("crlf", "t\r\nfake4"), ("good", "plain")):
        os.symlink(target, os.path.join(ws.path, name))  # all dangling but "good"
        os.lchown(os.path.join(ws.path, name), UID, UID)
    f = ftps_client(server)
    try:
        f.cwd(ws.vpath)
        mlsd, listing, nlst = [], [], []
        f.retrlines("MLSD", mlsd.append)
        f.retrlines("LIST", listing.append)
        f.retrlines("NLST", nlst.append)
        f.quit()
    finally:
        f.close()
    names = sorted(ln.split(" ", 1)[1] for ln in mlsd)
    assert names == [".", "crlf", "good", "plain", "semi", "space"], mlsd
    types = {ln.split(" ", 1)[1]: ln.split(" ", 1)[0] for ln in mlsd}
    assert types["good"].startswith("type=file;"), mlsd  # resolves inside the root: its facts
    for n in ("semi", "space", "crlf"):
        assert "type=OS.unix=symlink;" in types[n] and "fake" not in types[n], mlsd
    assert sorted(nlst) == ["crlf", "good", "plain", "semi", "space"], nlst
    assert len(listing) == 5 and all(ln.startswith(("-", "l")) for ln in listing), listing
    assert not any("fake2" in ln or "fake4" in ln for ln in listing), listing
    assert any(ln.endswith(" space -> x y") for ln in listing), listing
    assert any(ln.endswith(" crlf") for ln in listing), listing
