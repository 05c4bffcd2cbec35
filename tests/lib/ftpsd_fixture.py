"""Test fixtures: a throwaway CA and server certificate, fake users (nss_wrapper + pam_wrapper
with pam_matrix), and the real ftpsd binary served per connection by systemd-socket-activate."""

import ftplib
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("FTPSD_TEST_BINARY", os.path.join(ROOT, "ftpsd"))  # make check-asan
HOOKS_BINARY = os.path.join(ROOT, "build", "ftpsd-testhooks")
MULTIARCH = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip() or "x86_64-linux-gnu"
LIBDIR = "/usr/lib/" + MULTIARCH
PAM_MATRIX = LIBDIR + "/pam_wrapper/pam_matrix.so"

USERS = {
    # name: (uid, password)
    "alice": (60001, "alice-secret"),
    "bob": (60002, "bob-secret"),
    "carol": (60003, "carol pass with spaces"),
}
NOPRIV = ("ftpsdtest", 60100)
ANON_UID = 60200


def sanitized(path):
    """An ASan build (make check-asan): it cannot run under valgrind or strace."""
    with open(path, "rb") as fh:
        return b"__asan_init" in fh.read()


def wrapper_env(env, **extra):
    """This environment with the nss_wrapper variables the fixture's Server uses, so that a
    directly run ftpsd (ftpsd -t) finds nopriv_user=ftpsdtest and the test users, and with its
    pam_wrapper variables, so that -t looks for pam_service where the sessions' PAM does (the
    fixture's service directory, which has "ftpsd"). pam_wrapper itself is not preloaded: -t
    starts no PAM transaction, and each preloading process takes one of pam_wrapper's few
    /tmp/pam.X directories."""
    return {**os.environ, "LD_PRELOAD": f"{LIBDIR}/libnss_wrapper.so",
            "NSS_WRAPPER_PASSWD": env.passwd, "NSS_WRAPPER_GROUP": env.group,
            "PAM_WRAPPER": "1", "PAM_WRAPPER_SERVICE_DIR": env.pamdir, **extra}


def check_config(env, conf, text, *options, extra_env=None):
    """ftpsd -t -f conf (then options, such as -o key=value), conf being written with the
    fixture's certificate, nopriv_user and empty_dir on its first 4 lines and text after them;
    extra_env: variables over wrapper_env's (another NSS_WRAPPER_PASSWD). The CompletedProcess,
    its output as text."""
    conf.write_text(f"tls_cert_file = {env.cert}\ntls_key_file = {env.key}\n"
                    f"nopriv_user = {NOPRIV[0]}\nempty_dir = {env.empty}\n" + text)
    return subprocess.run([BINARY, "-t", "-f", str(conf), *options], capture_output=True,
                          text=True, env=wrapper_env(env, **(extra_env or {})))


def bio_handshake(ctx, raw, session):
    """A client TLS handshake on the connected socket raw, resuming session, driven through
    memory BIOs so that the caller decides every byte that goes out afterwards (and can send
    forged records, or never read). Returns (the SSLObject, its outgoing BIO)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost", session=session)
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            raw.sendall(out.read())
            d = raw.recv(65536)
            assert d, "server closed during the handshake"
            inc.write(d)
    raw.sendall(out.read())
    return obj, out


def free_port():
    s = socket.socket(socket.AF_INET6)
    s.bind(("::", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_below_ephemeral_range():
    """A free port on 127.0.0.1 below the ephemeral range (ip_local_port_range), for a range
    of one passive port: no connect() and no free_port() picks it meanwhile, while a port in
    the ephemeral range may be any connection's source port or another server's listener,
    and the only passive port would then be busy (425)."""
    import random
    with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
        low = int(fh.read().split()[0])
    for _ in range(100):
        p = random.randrange(max(1024, low - 8000), low)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as ftpsd binds it
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port below the ephemeral range")


def connect_from_elsewhere(host, port, timeout=5):
    """A TCP connection to (host, port) on IPv4 loopback, made from another loopback address.
    For asserting that nothing listens on a port: from the same address, connect() may pick
    that very port as its source port (passive ports lie in the ephemeral range), and the
    connection then reaches itself (TCP simultaneous open) instead of being refused."""
    src = "127.0.0.3" if host == "127.0.0.2" else "127.0.0.2"
    return socket.create_connection((host, port), timeout=timeout, source_address=(src, 0))


class Env:
    """One directory holding certificates, users' homes and the wrapper databases."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ftpsd-test-")
        os.chmod(self.dir, 0o755)
        self.homes = os.path.join(self.dir, "home")
        os.mkdir(self.homes)
        os.chmod(self.homes, 0o755)
        self.empty = os.path.join(self.dir, "empty")
        os.mkdir(self.empty)
        os.chmod(self.empty, 0o755)
        self._make_cert()
        self._make_users()

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def pam_service(self, prefix, lines, users=None):
        """A new pam_wrapper service named prefix and a random part: lines, in which {passdb}
        stands for a password file of its own with users (name: password; default: the
        fixture's users). Returns its name."""
        name = prefix + secrets.token_hex(3)
        passdb = self.path(name + ".passdb")
        pws = users or {u: pw for u, (_, pw) in USERS.items()}
        with open(passdb, "w") as fh:
            fh.write("".join(f"{u}:{pw}:{name}\n" for u, pw in pws.items()))
        os.chmod(passdb, 0o600)
        with open(os.path.join(self.pamdir, name), "w") as fh:
            fh.write("".join(l.format(passdb=passdb) + "\n" for l in lines))
        return name

    def pam_matrix_service(self, prefix, session_lines=()):
        """A new pam_wrapper service: pam_matrix for auth, account and session over its own
        copy of the users' passwords, then session_lines. Returns its name."""
        return self.pam_service(prefix, [f"{kind} required {PAM_MATRIX} passdb={{passdb}}"
                                         for kind in ("auth", "account", "session")]
                                + [l.replace("{", "{{").replace("}", "}}") for l in session_lines])

    def cert_copy(self, d, uid):
        """The server certificate and key copied into directory d, owned by uid (what a
        rootless ftpsd may read): (cert, key)."""
        os.makedirs(d, exist_ok=True)
        for f in ("server.pem", "server.key"):
            shutil.copy(self.path(f), os.path.join(d, f))
            os.chown(os.path.join(d, f), uid, uid)
        return os.path.join(d, "server.pem"), os.path.join(d, "server.key")

    def shim_preload(self, name):
        """LD_PRELOAD for a server with tests/lib/<name>.c (built once per run) in front of the
        fixture's wrappers."""
        shim = self.path(name + ".so")
        if not os.path.exists(shim):
            subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-g", "-o", shim,
                            os.path.join(ROOT, "tests", "lib", name + ".c"), "-ldl"], check=True)
        return f"{shim}:{LIBDIR}/libpam_wrapper.so:{LIBDIR}/libnss_wrapper.so"

    def home(self, user):
        return os.path.join(self.homes, user)

    def _make_cert(self):
        self.cert = self.path("server.pem")
        self.key = self.path("server.key")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext",
             "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1", "-keyout", self.key, "-out", self.cert],
            check=True, capture_output=True)
        os.chmod(self.key, 0o600)

    def _make_users(self):
        passwd = ["root:x:0:0:root:/root:/bin/bash"]
        group = ["root:x:0:", "shared:x:60500:alice,bob"]
        passdb = []
        for name, (uid, pw) in USERS.items():
            home = self.home(name)
            os.mkdir(home)
            os.chown(home, uid, uid)
            os.chmod(home, 0o755)
            passwd.append(f"{name}:x:{uid}:{uid}:{name}:{home}:/bin/bash")
            group.append(f"{name}:x:{uid}:")
            passdb.append(f"{name}:{pw}:ftpsd")
        passwd.append(f"{NOPRIV[0]}:x:{NOPRIV[1]}:{NOPRIV[1]}::/nonexistent:/usr/sbin/nologin")
        group.append(f"{NOPRIV[0]}:x:{NOPRIV[1]}:")
        # The anonymous FTP account (anon_user).
        passwd.append(f"ftp:x:{ANON_UID}:{ANON_UID}:anonymous:/nonexistent:/usr/sbin/nologin")
        group.append(f"ftp:x:{ANON_UID}:")
        self.passwd = self.path("passwd")
        self.group = self.path("group")
        self.passdb = self.path("passdb")
        for f, lines in ((self.passwd, passwd), (self.group, group), (self.passdb, passdb)):
            with open(f, "w") as fh:
                fh.write("\n".join(lines) + "\n")
        os.chmod(self.passdb, 0o600)
        self.pamdir = self.path("pam.d")
        os.mkdir(self.pamdir)
        # pam_wrapper looks for "other" too; an explicit deny keeps it quiet and safe.
        with open(os.path.join(self.pamdir, "other"), "w") as fh:
            for kind in ("auth", "account", "password", "session"):
                fh.write(f"{kind} required pam_deny.so\n")
        with open(os.path.join(self.pamdir, "ftpsd"), "w") as fh:
            for kind in ("auth", "account", "password", "session"):
                fh.write(f"{kind} required {PAM_MATRIX} passdb={self.passdb} verbose\n")

    def cleanup(self):
        if os.environ.get("FTPSD_TEST_KEEP"):
            print(f"\nkept test directory {self.dir}")
            return
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    """ftpsd behind systemd-socket-activate --inetd on 127.0.0.1:<port>."""

    def __init__(self, env, name="srv", wrappers=True, listen="127.0.0.1", binary=None,
                 prefix=(), system_pam=False, sections="", **conf):
        """system_pam: the real libpam loads pam_matrix from a temporary /etc/pam.d service
        (users still come from nss_wrapper). pam_wrapper keeps one directory per process in
        /tmp/pam.X, of which only 62 can exist and whose choice races between processes that
        start at the same moment: tests with many concurrent sessions use this instead.
        sections: text written after the keys ([host], [user] and [group] sections)."""
        self.env = env
        self.port = free_port()
        self.system_pam_file = None
        if system_pam:
            service = f"ftpsd-test-{os.getpid()}-{self.port}"
            passdb = env.path(f"passdb-{service}")
            with open(passdb, "w") as fh:
                fh.write("".join(f"{u}:{pw}:{service}\n" for u, (_, pw) in USERS.items()))
            os.chmod(passdb, 0o600)
            self.system_pam_file = f"/etc/pam.d/{service}"
            with open(self.system_pam_file, "w") as fh:
                fh.write("# temporary, written by the ftpsd test suite\n")
                for kind in ("auth", "account", "password", "session"):
                    fh.write(f"{kind} required {PAM_MATRIX} passdb={passdb}\n")
            conf.setdefault("pam_service", service)
        # IPv6 listeners are given as "[::1]".
        self.host = listen.strip("[]")
        self.conf_path = env.path(f"{name}-{self.port}.conf")
        settings = {
            "tls_cert_file": env.cert,
            "tls_key_file": env.key,
            "nopriv_user": NOPRIV[0],
            "empty_dir": env.empty,
            "write_enable": "yes",
            "fail_delay_ms": "200",
            "pasv_min_port": "40000",
            "pasv_max_port": "44999",
            "log_level": "debug",
            # Each server counts its own sessions: not the machine's /run/ftpsd.
            "session_lock_dir": env.path(f"sessions-{self.port}"),
            # Not the machine's wtmp (test_wtmp.py names its own).
            "wtmp_file": "",
        }
        settings.update({k: str(v) for k, v in conf.items()})
        # A key given as None is left out: its default applies.
        settings = {k: v for k, v in settings.items() if conf.get(k, "") is not None}
        self.settings = settings
        with open(self.conf_path, "w") as fh:
            fh.write("# written by the test suite\n")
            for k, v in settings.items():
                fh.write(f"{k} = {v}\n")
            fh.write(sections)
        cmd = ["systemd-socket-activate", "--accept", "--inetd", "-l", f"{listen}:{self.port}"]
        if wrappers and system_pam:
            for var in (f"LD_PRELOAD={LIBDIR}/libnss_wrapper.so",
                        f"NSS_WRAPPER_PASSWD={env.passwd}", f"NSS_WRAPPER_GROUP={env.group}"):
                cmd += ["-E", var]
        elif wrappers:
            for var in (f"LD_PRELOAD={LIBDIR}/libpam_wrapper.so:{LIBDIR}/libnss_wrapper.so",
                        "PAM_WRAPPER=1", f"PAM_WRAPPER_SERVICE_DIR={env.pamdir}",
                        f"NSS_WRAPPER_PASSWD={env.passwd}", f"NSS_WRAPPER_GROUP={env.group}"):
                cmd += ["-E", var]
        # FTPSD_TEST_ENV: names of variables (space-separated) handed on to the server as they
        # are in this environment, e.g. "ASAN_OPTIONS UBSAN_OPTIONS" (make check-asan).
        for var in os.environ.get("FTPSD_TEST_ENV", "").split():
            cmd += ["-E", var]
        cmd += list(prefix) + [binary or BINARY, "-f", self.conf_path]
        self.stderr = open(env.path(f"{name}-{self.port}.stderr"), "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     start_new_session=True)
        # Wait for the listener without connecting: a probe connection would start a session
        # of its own, and pam_wrapper's per-process directory is racy between concurrent starts.
        deadline = time.time() + 10
        while time.time() < deadline:
            with open(self.stderr.name) as fh:
                if "Listening on" in fh.read():
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("server did not start")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.stderr.close()
        if self.system_pam_file:
            try:
                os.unlink(self.system_pam_file)
            except OSError:
                pass

    # --- clients -------------------------------------------------------------------------
    def ftps(self, user=None, prot_p=True, timeout=20):
        """A logged-in Python FTP_TLS client (no data-session reuse: Python never resumes)."""
        ctx = ssl.create_default_context(cafile=self.env.cert)
        ctx.check_hostname = False
        f = ftplib.FTP_TLS(context=ctx, timeout=timeout)
        f.connect(self.host, self.port)
        if user:
            f.login(user, USERS[user][1])
            if prot_p:
                f.prot_p()
        return f

    def ftps_reuse(self, user=None, prot_p=True, timeout=20):
        """An FTP_TLS client whose data connections resume the control session (as curl does)."""
        ctx = ssl.create_default_context(cafile=self.env.cert)
        ctx.check_hostname = False
        f = ReusingFTP_TLS(context=ctx, timeout=timeout)
        f.connect(self.host, self.port)
        if user:
            f.login(user, USERS[user][1])
            if prot_p:
                f.prot_p()
        return f

    def raw(self, timeout=10, source=None):
        return RawClient(self.host, self.port, timeout, source)

    def tls_raw(self, user=None, prot=False, timeout=10):
        """A RawClient after the 220 and AUTH TLS; logged in as user if given, with PBSZ 0 and
        PROT P if prot."""
        r = self.raw(timeout=timeout)
        assert r.reply()[0] == 220
        r.starttls(self.env.cert)
        if user:
            r.login(user)
        if prot:
            assert r.cmd("PBSZ 0")[0] == 200
            assert r.cmd("PROT P")[0] == 200
        return r

    def curl(self, *args, user="alice", check=True, timeout=60):
        cmd = ["curl", "-sS", "--ssl-reqd", "--cacert", self.env.cert, "-u",
               f"{user}:{USERS[user][1]}", "--max-time", str(timeout)] + list(args)
        return subprocess.run(cmd, capture_output=True, check=check, timeout=timeout + 10)

    def url(self, path=""):
        return f"ftp://localhost:{self.port}/{path}"

    def lftp(self, script, user="alice", tls12=False, check=True, timeout=120):
        settings = ("set ftp:ssl-force true; set ftp:ssl-protect-data true; "
                    "set ftp:ssl-protect-list true; set ssl:ca-file " + self.env.cert + "; "
                    "set ssl:check-hostname no; set net:max-retries 1; set net:timeout 10; "
                    "set cmd:fail-exit yes; ")
        if tls12:
            settings += 'set ssl:priority "NORMAL:-VERS-TLS1.3"; '
        full = settings + f"open -u {user},{USERS[user][1]} -p {self.port} localhost; " + script
        return subprocess.run(["lftp", "-c", full], capture_output=True, check=check,
                              timeout=timeout)


class ReusingFTP_TLS(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host,
                                            session=self.sock.session)
        return conn, size


class RawClient:
    """A line-level client for exact reply codes, in plaintext or TLS."""

    def __init__(self, host, port, timeout=10, source=None):
        self.host = host
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        self.ctx = None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line):
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply()

    def readline(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "surrogateescape")

    def reply(self):
        """Returns (code, [lines]) of one complete reply."""
        first = self.readline()
        lines = [first]
        code = int(first[:3])
        if len(first) > 3 and first[3] == "-":
            while True:
                l = self.readline()
                lines.append(l)
                if l[:3] == first[:3] and len(l) > 3 and l[3] == " ":
                    break
        return code, lines

    def starttls(self, cafile, server_hostname="localhost"):
        code, _ = self.cmd("AUTH TLS")
        assert code == 234, code
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.ctx.check_hostname = False
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        return code

    def data_connect(self, lines_or_port, tls=True, session=None):
        """Connects to the port of a 227/229 reply (or a port number) and wraps it in TLS."""
        import re
        if isinstance(lines_or_port, int):
            port = lines_or_port
        else:
            text = lines_or_port[0]
            m = re.search(r"\|\|\|(\d+)\|", text)
            if m:
                port = int(m.group(1))
            else:
                nums = re.search(r"(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)", text).groups()
                port = int(nums[4]) * 256 + int(nums[5])
        d = socket.create_connection((self.host, port), timeout=10)
        if tls:
            d = self.ctx.wrap_socket(d, server_hostname="localhost",
                                     session=session if session is not None else self.sock.session)
        return d

    @staticmethod
    def read_all(d):
        """Reads to the end, then closes as clients do (close_notify back, then TCP close)."""
        out = b""
        try:
            while True:
                chunk = d.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (ssl.SSLError, OSError):
            pass
        try:
            if isinstance(d, ssl.SSLSocket):
                d = d.unwrap()
        except (ssl.SSLError, OSError, ValueError):
            pass
        d.close()
        return out

    def login(self, user):
        assert self.cmd(f"USER {user}")[0] == 331
        code, lines = self.cmd(f"PASS {USERS[user][1]}")
        assert code == 230, lines
        return code

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
