"""Random command sequences against the real server: a stateful fuzzer at the protocol level.

The corpus of test_badinput.py sends each bad input at the point where it matters. This module
instead drives whole sessions through random walks over every command, with arguments drawn
from a pool of good and bad ones, and with data connections that are used, refused, dropped,
aborted, never opened or opened in the wrong protection level, in passive and active mode,
with REIN and CCC allowed, on three servers (the defaults; everything allowed that can be;
implicit TLS with anonymous uploads). The walks are seeded: a failure names the seed and the steps that
led to it, and `FTPSD_STATEFUZZ_SEED=<seed>` replays that walk alone.

After every step the client sends SYST and reads up to its 215 (the only command that answers
215) within the step's time limit, so the session did not hang. Every line on the way must be
a well-formed reply, and every command must have had exactly one final reply (1xx replies only
while a command waits for its final one): the session is still in step. At the end: no session
process died of a signal or was killed by seccomp, every session's processes are gone, no
upload left a temporary file behind, and a new session still logs in.

FTPSD_STATEFUZZ_SESSIONS (default 40) and FTPSD_STATEFUZZ_STEPS (default 30) make longer runs,
FTPSD_STATEFUZZ_FIRST (default 63445) walks other seeds."""
import collections
import os
import random
import re
import shutil
import socket
import ssl
import time

import pytest

from ftpsd_fixture import ANON_UID, USERS, Server
from reliability import (RUN, SyslogMark, alive, all_stats, assert_server_works, children,
                         descendants, epsv_port, log_lines, make_user_dir, parts, put, rst_close,
                         say, wait_until)

SESSIONS = int(os.environ.get("FTPSD_STATEFUZZ_SESSIONS", "40"))
STEPS = int(os.environ.get("FTPSD_STATEFUZZ_STEPS", "30"))
ONE_SEED = os.environ.get("FTPSD_STATEFUZZ_SEED")
FIRST = int(os.environ.get("FTPSD_STATEFUZZ_FIRST", str(0xF7D5)))
SEEDS = [int(ONE_SEED)] if ONE_SEED else [FIRST + i for i in range(SESSIONS)]

# Each step must be answered within this (the server's data_timeout is 3 s; a stalled data
# connection therefore ends well before it).
STEP_LIMIT = 25.0
REPLY = re.compile(r"^[1-5][0-9][0-9]([ -]|$)")


@pytest.fixture(scope="module")
def anon_root(env):
    """A root for anonymous sessions: pub/ to read, incoming/ owned by the anonymous user."""
    root = env.path(f"statefuzz-anon-{RUN}")
    os.makedirs(os.path.join(root, "pub"))
    with open(os.path.join(root, "pub", "README"), "w") as fh:
        fh.write("public file\n")
    os.makedirs(os.path.join(root, "incoming"))
    os.chown(os.path.join(root, "incoming"), ANON_UID, ANON_UID)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def fservers(env, anon_root):
    """Three servers, all with REIN and CCC: the defaults (PROT P and session reuse required);
    one that allows all it can (PROT C, PORT/EPRT, data connections without reuse); and one
    with implicit TLS and anonymous logins that may upload."""
    common = dict(data_timeout=3, allow_rein="yes", allow_ccc="yes", max_login_failures=3)
    servers = [
        Server(env, name="statefuzz-strict", **common),
        Server(env, name="statefuzz-relaxed", require_prot_p="no", require_session_reuse="no",
               port_enable="yes", **common),
        Server(env, name="statefuzz-implicit-anon", implicit_tls="yes", anonymous="yes",
               anon_root=anon_root, anon_write_enable="yes", **common),
    ]
    yield servers
    for srv in servers:
        srv.stop()


@pytest.fixture(scope="module")
def fdir(env):
    """statefuzz_<RUN> in alice's home, with a few files, a directory and a symlink."""
    name = f"statefuzz_{RUN}"
    path = make_user_dir(env, "alice", name)
    put(os.path.join(path, "small.txt"), b"line one\r\nline two\nline three\r\n")
    put(os.path.join(path, "big.bin"), os.urandom(3 * 1024 * 1024))
    put(os.path.join(path, "empty"), b"")
    sub = os.path.join(path, "sub")
    os.mkdir(sub)
    os.chown(sub, USERS["alice"][0], USERS["alice"][0])
    os.symlink("small.txt", os.path.join(path, "link"))
    yield name, path
    shutil.rmtree(path, ignore_errors=True)


_STATE = {"pids": set()}
CODES = collections.Counter()  # every reply code the walks got, printed at the end


@pytest.fixture(scope="module", autouse=True)
def mark(request, syslog):
    _STATE["mark"] = SyslogMark(syslog)
    yield
    say(request, "test_statefuzz.py replies by code: " +
        " ".join(f"{c}:{n}" for c, n in sorted(CODES.items())))


# Commands that answer with exactly one reply and change no TLS state: safe to pipeline.
BURSTABLE = ["NOOP", "PWD", "CWD", "CDUP", "SIZE", "MDTM", "MLST", "STAT", "TYPE", "MODE", "STRU",
             "REST", "ALLO", "PBSZ", "PROT", "HELP", "FEAT", "OPTS", "SITE", "MKD", "RMD", "DELE",
             "RNFR", "RNTO", "HOST", "LANG", "ACCT", "SMNT", "EPSV", "PASV", "USER",
             "XYZZY", "MFMT"]


class Desync(AssertionError):
    pass


class Walk:
    """One session's random walk; self.trace holds what was sent and answered."""

    def __init__(self, server, dirname, seed):
        self.server = server
        self.dirname = dirname
        self.rng = random.Random(seed)
        self.trace = []
        self.before = set(children(server.proc.pid))
        self.procs = {}  # {pid: starttime} of this session's processes, seen so far
        self.plain = socket.create_connection((server.host, server.port), timeout=STEP_LIMIT)
        self.buf = b""
        self.tls = None  # the control connection's SSLSocket while TLS is on
        self.ctx = ssl.create_default_context(cafile=server.env.cert)
        self.ctx.check_hostname = False
        self.anon = server.settings.get("anonymous") == "yes"
        if server.settings.get("implicit_tls") == "yes":
            self.tls = self.ctx.wrap_socket(self.plain, server_hostname="localhost")
        self.pasv = None  # (host, port) of the last 227/229
        self.listener = None  # our socket for PORT/EPRT
        self.ended = False
        self.logged_in = False
        self.pending = 1  # the greeting
        self.syncing = False

    # --- the control connection -------------------------------------------------------------
    @property
    def sock(self):
        return self.tls or self.plain

    def send(self, line):
        self.trace.append(">> " + line[:120])
        self.sock.sendall(line.encode("utf-8", "surrogateescape") + b"\r\n")
        self.pending += 1

    def readline(self, deadline):
        while b"\n" not in self.buf:
            self.sock.settimeout(max(0.1, deadline - time.time()))
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                raise Desync(f"no reply within {STEP_LIMIT} s")
            except (ssl.SSLError, ConnectionError) as e:
                raise EOFError(str(e))
            if not chunk:
                raise EOFError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        if not line.endswith(b"\r"):
            raise Desync(f"reply line without CR: {line!r}")
        return line[:-1].decode("utf-8", "surrogateescape")

    def reply(self, deadline=None):
        """One complete reply: (code, lines)."""
        deadline = deadline or time.time() + STEP_LIMIT
        first = self.readline(deadline)
        if not REPLY.match(first):
            raise Desync(f"not a reply: {first!r}")
        lines = [first]
        if first[3:4] == "-":
            while True:
                line = self.readline(deadline)
                lines.append(line)
                if line[:3] == first[:3] and line[3:4] == " ":
                    break
        self.trace.append("<< " + " | ".join(lines)[:160])
        code = int(first[:3])
        CODES[code] += 1
        # Exactly one final reply per command, and a preliminary one only while a command
        # waits for its final one: a reply missing, doubled or out of place shows here or at
        # the next sync.
        if code >= 200:
            self.pending -= 1
        if self.pending < 0 or (code < 200 and self.pending == 0):
            raise Desync(f"a reply no command asked for: {first!r}")
        if code == 215 and not self.syncing:
            raise Desync("the 215 of a SYST came for another command")
        if code == 230:
            self.logged_in = True
        elif code in (220, 331):  # REIN, or a new USER: logged out
            self.logged_in = False
        if code == 421:
            self.ended = True
        return code, lines

    def cmd(self, line):
        self.send(line)
        return self.reply()

    def sync(self):
        """SYST, then every reply up to its 215."""
        deadline = time.time() + STEP_LIMIT
        self.send("SYST")
        self.syncing = True
        try:
            while True:
                code, _ = self.reply(deadline)
                if code == 421:
                    return
                if code == 215:
                    break
        finally:
            self.syncing = False
        if self.pending:
            raise Desync(f"{self.pending} command(s) got no reply")

    # --- TLS on the control connection ------------------------------------------------------
    def auth_tls(self):
        code, _ = self.cmd(self.rng.choice(["AUTH TLS", "AUTH TLS", "AUTH SSL", "AUTH tls-c"]))
        if code == 234:
            self.tls = self.ctx.wrap_socket(self.plain, server_hostname="localhost")

    def clear_tls(self):
        """After CCC's 200 or REIN's 220: the commands go on in plaintext."""
        if self.tls is not None:
            self.plain = self.tls.unwrap()
            self.tls = None

    # --- data connections -------------------------------------------------------------------
    def passive(self):
        code, lines = self.cmd(self.rng.choice(["EPSV", "PASV", "EPSV 1", "EPSV 2", "EPSV ALL"]))
        n = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", lines[0]) if code == 227 else None
        if code == 229:
            self.pasv = (self.server.host, epsv_port(lines))
        elif n:
            g = [int(x) for x in n.groups()]
            self.pasv = (".".join(map(str, g[:4])), g[4] * 256 + g[5])

    def active(self):
        if self.listener is None:
            self.listener = socket.create_server(("127.0.0.1", 0))
            self.listener.settimeout(5)
        port = self.listener.getsockname()[1]
        if self.rng.random() < 0.5:
            self.cmd(f"PORT 127,0,0,1,{port >> 8},{port & 255}")
        else:
            self.cmd(f"EPRT |1|127.0.0.1|{port}|")
        self.pasv = None

    def connect_data(self):
        """A TCP data connection to the last 227/229, or the server's to our PORT/EPRT."""
        try:
            if self.pasv:
                return socket.create_connection(self.pasv, timeout=5)
            if self.listener is not None:
                d, _ = self.listener.accept()
                d.settimeout(5)
                return d
        except OSError:
            pass
        return None

    def open_data(self, d):
        """TLS on the data connection d, as the server expects under TLS most of the time (not
        always: a plaintext one, or one that does not resume the session, is refused)."""
        if d is None:
            return None
        if self.tls is not None and self.rng.random() < 0.95:
            try:
                reuse = self.tls.session if self.rng.random() < 0.9 else None
                d = self.ctx.wrap_socket(d, server_hostname="localhost", session=reuse)
            except (ssl.SSLError, OSError):
                d.close()
                return None
        return d

    def use_data(self, d, upload):
        how = self.rng.choice(["full", "full", "full", "drop", "rst", "partial"])
        try:
            if upload and how != "rst":
                size = self.rng.choice([0, 1, 1000, 70000, 300000])
                data = os.urandom(size)
                if how == "partial":
                    data = data[: len(data) // 2]
                d.sendall(data)
            elif not upload and how in ("full", "partial"):
                limit = 1 << 30 if how == "full" else self.rng.choice([0, 100, 20000])
                got = 0
                while got < limit:
                    chunk = d.recv(65536)
                    if not chunk:
                        break
                    got += len(chunk)
            if how == "rst":
                rst_close(d)
                return
            if isinstance(d, ssl.SSLSocket) and how != "drop":
                d = d.unwrap()
        except (OSError, ssl.SSLError, ValueError):
            pass
        d.close()

    def transfer(self, verb, arg):
        upload = verb in ("STOR", "APPE", "STOU")
        # As curl does: the TCP connection before the command, TLS on it after the 150.
        early = self.connect_data() if self.pasv and self.rng.random() < 0.5 else None
        d = None
        self.send(f"{verb} {arg}".rstrip())
        code, _ = self.reply()
        if code in (125, 150) and early is not None:
            d = self.open_data(early)
            early = None
        if early is not None:
            early.close()
        if code in (125, 150):
            action = self.rng.random()
            if action < 0.1:
                self.send("ABOR")  # the transfer never starts on our side
            elif action < 0.2:
                self.send("STAT")
                self.reply()
            if d is None and action >= 0.1:
                d = self.open_data(self.connect_data())
            if d is not None:
                if 0.2 <= action < 0.3:
                    self.send("ABOR")  # mid-way: the server must not wait for us
                self.use_data(d, upload)
                d = None
            elif action >= 0.1:
                self.send("ABOR")
        if d is not None:
            d.close()
        self.pasv = None

    # --- the walk ---------------------------------------------------------------------------
    def args(self):
        return self.rng.choice([
            "", "small.txt", "big.bin", "empty", "sub", "link", "nonexistent", "..", "/",
            "../../..", "sub/../small.txt", "new.bin", "new dir", "ünïcödé.txt", "-la", "-a sub",
            "*", "a" * 300, "x/" * 200, "%s%n%x", "\x01\x7f", "sub/", ".ftpsd-x.part",
            "/" + self.dirname, "~", "0", "-1", "18446744073709551616", "99999999999999",
            "20240101000000 small.txt", "type;size;modify;", "UTF8 ON", "UTF8 OFF",
            "MLST type;perm;", "CHMOD 600 small.txt", "CHMOD 9999 x", "UMASK 077", "HELP",
            "A", "I", "E", "L 8", "A N", "S", "B", "F", "R", "P", "C", "S", "E", "TLS"])

    def step(self):
        verb = "PASV_DATA" if self.rng.random() < 0.3 else self.rng.choice([
            "RETR", "RETR", "STOR", "STOR", "APPE", "STOU", "LIST", "LIST", "NLST", "MLSD",
            "PASV_DATA", "PASV_DATA", "PASV_DATA", "ACTIVE_DATA",
            "CWD", "CDUP", "PWD", "MKD", "RMD", "DELE", "RNFR", "RNTO", "RNPAIR", "SIZE", "MDTM",
            "MFMT", "MLST", "STAT", "SITE", "OPTS", "FEAT", "HELP", "NOOP", "TYPE", "MODE",
            "STRU", "REST", "ALLO", "PROT", "PBSZ", "ABOR", "HOST", "LANG", "ACCT", "SMNT",
            "REIN", "CCC", "USER", "PASS", "AUTH", "ADAT", "XCWD", "XPWD", "XMKD", "XRMD",
            "XCUP", "BOGUS", "EPSV", "PASV", "PORT", "EPRT", "BURST", "BURST"])
        arg = self.args()
        if verb in ("PASV_DATA", "ACTIVE_DATA"):
            if self.rng.random() < 0.3:
                self.cmd(f"CWD /{self.dirname}")
            if verb == "PASV_DATA":
                self.passive()
            else:
                self.active()
            xverb = self.rng.choice(["RETR", "STOR", "APPE", "STOU", "LIST", "NLST", "MLSD"])
            if self.rng.random() < 0.3:
                self.cmd(f"REST {self.rng.choice([0, 5, 1000, 4000000])}")
            name = self.rng.choice(["small.txt", "big.bin", "empty", "up.bin", "sub", "link",
                                    "new.bin", "nonexistent", "", "sub/x.bin"])
            self.transfer(xverb, name)
        elif verb in ("RETR", "STOR", "APPE", "STOU", "LIST", "NLST", "MLSD"):
            self.transfer(verb, arg)
        elif verb == "RNPAIR":
            self.cmd(f"RNFR {self.rng.choice(['small.txt', 'new.bin', 'sub', 'up.bin'])}")
            self.cmd(f"RNTO {self.rng.choice(['new.bin', 'small.txt', 'sub/y', '../z'])}")
        elif verb == "AUTH":
            if self.tls is None:
                self.auth_tls()
            else:
                self.cmd("AUTH TLS")
        elif verb == "CCC":
            if self.cmd("CCC")[0] == 200:
                self.clear_tls()
        elif verb == "REIN":
            if self.cmd("REIN")[0] == 220:  # TLS is cleared with the login
                self.pasv = None
                self.clear_tls()
        elif verb == "USER":
            self.cmd(f"USER {self.rng.choice(['alice', 'bob', 'nobody', 'root', arg])}")
        elif verb == "PASS":
            self.cmd(f"PASS {self.rng.choice([USERS['alice'][1], 'wrong', arg])}")
        elif verb == "PORT":
            self.cmd(f"PORT {self.rng.choice(['127,0,0,1,0,21', '1,2,3,4,5,6', '127,0,0,1,300,1', arg])}")
        elif verb == "EPRT":
            self.cmd(f"EPRT {self.rng.choice(['|1|127.0.0.1|21|', '|2|::1|2000|', '|3|x|1|', arg])}")
        elif verb == "BURST":
            # Pipelined: several commands in one write, then one reply for each, in order.
            lines = [f"{self.rng.choice(BURSTABLE)} {self.args()}".rstrip()
                     for _ in range(self.rng.randint(2, 8))]
            self.trace.append(">> " + " / ".join(lines)[:160])
            self.sock.sendall("".join(l + "\r\n" for l in lines).encode("utf-8", "surrogateescape"))
            self.pending += len(lines)
            for _ in lines:
                self.reply()
                if self.ended:
                    break
        elif verb == "BOGUS":
            self.cmd(self.rng.choice(["XYZZY", "RETR\x00x", "NOOP extra", "", " ", "LIST\tx"]))
        else:
            self.cmd(f"{verb} {arg}".rstrip())

    def run(self):
        code, _ = self.reply()
        assert code == 220, self.trace
        self.see_procs()
        for _ in range(STEPS):
            if self.ended:
                break
            # Mostly logged in with PROT P, where most of the code is: a walk that logged out
            # (REIN, USER) usually logs in again.
            if not self.logged_in and self.rng.random() < 0.7:
                self.login()
                if self.ended:
                    break
                self.sync()
                continue
            self.step()
            self.see_procs()
            if self.ended:
                break
            self.sync()
        if not self.ended and self.rng.random() < 0.5:
            self.send("QUIT")

    def login(self):
        if self.tls is None and self.rng.random() < 0.95:
            self.auth_tls()
        if self.anon and self.rng.random() < 0.5:
            self.cmd(self.rng.choice(["USER anonymous", "USER ftp"]))
            self.cmd(f"PASS {self.rng.choice(['guest@example.org', '', 'x' * 300])}")
            home = self.rng.choice(["/incoming", "/pub", "/"])
        else:
            self.cmd("USER alice")
            self.cmd(f"PASS {USERS['alice'][1]}")
            home = f"/{self.dirname}"
        self.cmd("PBSZ 0")
        self.cmd(self.rng.choice(["PROT P", "PROT P", "PROT P", "PROT C"]))
        self.cmd(f"CWD {home}")

    def see_procs(self):
        stats = all_stats()
        for mon in set(children(self.server.proc.pid, stats)) - self.before:
            if mon not in self.procs:
                self.procs[mon] = stats[mon][2]
            self.procs.update(descendants(mon))
        _STATE["pids"].update(self.procs)

    def close(self):
        for s in (self.tls, self.plain, self.listener):
            try:
                if s is not None:
                    s.close()
            except OSError:
                pass


@pytest.mark.parametrize("seed", SEEDS)
def test_random_walk(fservers, fdir, seed):
    fserver = fservers[seed % len(fservers)]
    w = Walk(fserver, fdir[0], seed)
    try:
        try:
            w.run()
        except EOFError as e:
            # The server may close: after QUIT, a 421, or a failed CCC/REIN in the middle of TLS.
            # It must never close without a final reply line first.
            last = [t for t in w.trace if t.startswith("<< ")][-1:]
            assert w.ended or (last and last[0][3:6] in ("221", "421")), \
                f"seed {seed}: closed without a 221/421 ({e})\n" + "\n".join(w.trace[-30:])
        except Desync as e:
            raise AssertionError(f"seed {seed}: {e}\n" + "\n".join(w.trace[-30:]))
    finally:
        w.close()
    assert w.procs, "the session's processes were never seen"
    assert wait_until(lambda: not alive(w.procs), 15), \
        f"seed {seed}: session processes left: {alive(w.procs)}\n" + "\n".join(w.trace[-30:])


def test_no_temporary_files_left(fdir, anon_root):
    """No upload of the walks left a .ftpsd-*.part behind (all sessions have ended)."""
    server_made = re.compile(r"^\.ftpsd-[0-9a-f]{12}\.part$")  # a walk may name a file .ftpsd-x.part
    left = []
    for top in [t for base in (fdir[1], anon_root) for t, _, _ in os.walk(base)]:
        left += [p for p in parts(top) if server_made.match(os.path.basename(p))]
    assert not left, left


def test_no_walk_process_crashed(fservers):
    text = _STATE["mark"].text()
    if text is None:
        pytest.skip("no syslog to read")
    lines = log_lines(text, _STATE["pids"])
    bad = [l for l in lines if "died of signal" in l or "killed by seccomp" in l
           or "stopped answering" in l]
    assert not bad, bad
    for srv in fservers:
        if srv.settings.get("implicit_tls") != "yes":
            assert_server_works(srv)
            continue
        w = Walk(srv, "", 0)  # TLS from the first byte: a new session still logs in
        try:
            assert w.reply()[0] == 220
            assert w.cmd("USER alice")[0] == 331
            assert w.cmd(f"PASS {USERS['alice'][1]}")[0] == 230
            assert w.cmd("NOOP")[0] == 200
            assert w.cmd("QUIT")[0] == 221
        finally:
            w.close()


def test_walks_reached_the_data_path():
    """The walks did what they are for: transfers completed (226 after a 150), were aborted
    (426) and refused (425), logins succeeded, and REST was taken (350). A change that
    kept the walks away from the data path (a login that stopped working, say) fails here
    instead of passing on walks that only ever got 530."""
    if ONE_SEED or SESSIONS < 20:
        pytest.skip("a single walk or a short run")
    for code, least in ((150, SESSIONS), (226, SESSIONS // 2), (426, 3), (425, 3),
                        (230, SESSIONS), (350, 3)):
        assert CODES[code] >= least, (code, CODES[code], dict(CODES))
