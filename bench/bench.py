#!/usr/bin/env python3
"""make bench: ftpsd against vsftpd, ProFTPD and Pure-FTPd, with a TLS ceiling and OpenSSH SFTP.

Every server runs per connection under `systemd-socket-activate --accept --inetd` on a loopback
port, with the same certificate, the same PAM account (a throwaway system account through the
same PAM stack, a copy of pam.d/ftpsd), TLS required and PROT P required where the server can
require it. Each server and its session processes run in a cgroup of their own (cgroup v2), whose
cpu.stat counts the CPU time of every process of every session, including the ones that have
exited; the client's CPU comes from wait4(). See bench/README.md for what is measured and how.

    bench.py                run everything (BENCH_QUICK=1: the quick sizes)
    bench.py --serve        set up and keep the servers running until Ctrl-C (debugging)
    bench.py --profile      where ftpsd's data path spends its time (perf, strace)
"""

import argparse
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
WORK = os.path.join(BENCH, ".work")
ROOTFS = os.path.join(WORK, "root")
BIN = os.path.join(WORK, "bin")
# BENCH_FTPSD: another build to measure (a worktree of an older commit, say).
FTPSD = os.path.abspath(os.environ.get("BENCH_FTPSD", os.path.join(ROOT, "ftpsd")))
USER = "ftpsdbench"
USER_COMMENT = "ftpsd benchmark account (bench/bench.py; removed after the run)"
PAM_SERVICE = "ftpsdbench"
HOME_MNT = os.path.join(WORK, "home")
HOME = os.path.join(HOME_MNT, USER)
HOST = "127.0.0.1"
PORT_BASE = int(os.environ.get("BENCH_PORT_BASE", "22100"))
# TLS 1.3 suite every client offers (and the only one it offers), so that every server and the
# ceilings encrypt with the same AEAD; TLS 1.2, if a server only speaks that, gets the same AEAD.
SUITE13 = os.environ.get("BENCH_TLS13_SUITE", "TLS_AES_256_GCM_SHA384")
CIPHER12 = os.environ.get("BENCH_TLS12_CIPHER", "ECDHE-ECDSA-AES256-GCM-SHA384")
SSH_CIPHER = os.environ.get("BENCH_SSH_CIPHER", "aes256-gcm@openssh.com")
SETSID = shutil.which("setsid") or "/usr/bin/setsid"
GiB = 1 << 30
MiB = 1 << 20


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def sh(*cmd, check=True, input=None, **kw):
    return subprocess.run(list(cmd), check=check, input=input, capture_output=True, text=True,
                          **kw)


class Config:
    def __init__(self, quick):
        self.quick = quick
        self.size = int(os.environ.get("BENCH_SIZE_MIB", "100" if quick else "1024")) * MiB
        self.reps = int(os.environ.get("BENCH_REPS", "3"))
        # Single transfers swing more than session loops on a shared VM: more runs.
        self.xfer_reps = int(os.environ.get("BENCH_XFER_REPS", "5"))
        self.sessions = int(os.environ.get("BENCH_SESSIONS", "50" if quick else "200"))
        self.concurrency = int(os.environ.get("BENCH_CONCURRENCY", "16"))
        self.idle = int(os.environ.get("BENCH_IDLE", "50" if quick else "200"))


# --- system state, undone at exit ------------------------------------------------------------

class Undo:
    def __init__(self):
        self.steps = []

    def add(self, what, fn):
        self.steps.append((what, fn))

    def run(self):
        while self.steps:
            what, fn = self.steps.pop()
            try:
                fn()
            except Exception as e:  # keep undoing the rest
                log(f"cleanup of {what} failed: {e}")


UNDO = Undo()


def cgroup2_root():
    with open("/proc/mounts") as fh:
        for line in fh:
            f = line.split()
            if f[2] == "cgroup2":
                return f[1]
    raise SystemExit("bench: needs a cgroup v2 hierarchy (for per-server CPU accounting)")


def is_mountpoint(path):
    return subprocess.run(["mountpoint", "-q", path]).returncode == 0


def write_file(path, text, mode=0o644):
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, mode)


class Env:
    """Certificate, account, PAM services, the data file system and the cgroup parent."""

    def __init__(self, cfg):
        self.cfg = cfg
        for d in ("bin", "tls", "ssh", "conf", "logs", "run", "empty"):
            os.makedirs(os.path.join(WORK, d), exist_ok=True)
        os.chmod(WORK, 0o755)
        os.chmod(os.path.join(WORK, "empty"), 0o755)
        self.cg = os.path.join(cgroup2_root(), "ftpsdbench")
        self._stale()
        self._build()
        self._cert()
        self._account()
        self._pam()
        self._sshd_prereqs()
        os.makedirs(self.cg, exist_ok=True)
        UNDO.add("cgroup", lambda: os.rmdir(self.cg))

    # Leftovers of an interrupted run.
    def _stale(self):
        if os.path.isdir(os.path.join(cgroup2_root(), "ftpsdbench")):
            for d in sorted(os.listdir(self.cg)):
                p = os.path.join(self.cg, d)
                if os.path.isdir(p):
                    kill_cgroup(p)
                    os.rmdir(p)
        try:
            pw = pwd.getpwnam(USER)
            if pw.pw_gecos == USER_COMMENT:
                log(f"removing the account {USER} left by an interrupted run")
                subprocess.run(["userdel", "-f", USER], capture_output=True)
            else:
                raise SystemExit(f"bench: an account {USER} exists and is not the bench's")
        except KeyError:
            pass
        if is_mountpoint(HOME_MNT):
            subprocess.run(["umount", HOME_MNT], check=False)

    def _build(self):
        if not os.path.exists(FTPSD):
            raise SystemExit("bench: build ftpsd first (make)")
        # A copy: a rebuild of the tree during the run must not swap the binary under the
        # listener (a half-written file makes sessions close before their greeting).
        self.ftpsd = os.path.join(BIN, "ftpsd")
        shutil.copy2(FTPSD, self.ftpsd + ".tmp")
        os.replace(self.ftpsd + ".tmp", self.ftpsd)
        libs = {"ftpsload": ["-lssl", "-lcrypto"], "tlspump": ["-lssl", "-lcrypto"],
                "pamcost": ["-rdynamic", "-lpam", "-ldl", "-Wl,--no-as-needed", "-lcrypt"]}
        for prog, flags in libs.items():
            src = os.path.join(BENCH, prog + ".c")
            out = os.path.join(BIN, prog)
            newest = max(os.path.getmtime(p) for p in (src, os.path.join(BENCH, "tlsbufs.h")))
            if not os.path.exists(out) or os.path.getmtime(out) < newest:
                sh("gcc", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-o", out, src, *flags)

    def _cert(self):
        self.cert = os.path.join(WORK, "tls", "cert.pem")
        self.key = os.path.join(WORK, "tls", "key.pem")
        if not os.path.exists(self.cert):
            sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-days", "30", "-subj", "/CN=localhost", "-addext",
               "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", self.key, "-out",
               self.cert)
        os.chmod(self.key, 0o600)
        # Pure-FTPd reads "cert,key" but some builds want one bundle: give both.
        self.bundle = os.path.join(WORK, "tls", "bundle.pem")
        with open(self.bundle, "w") as out:
            out.write(open(self.key).read() + open(self.cert).read())
        os.chmod(self.bundle, 0o600)

    def _account(self):
        os.makedirs(HOME_MNT, exist_ok=True)
        if os.environ.get("BENCH_TMPFS", "1") != "0":
            # Files live in RAM: no disk write-back running in the background of the next test.
            size_mb = max(512, 3 * self.cfg.size // MiB + 256)
            sh("mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "ftpsdbench", HOME_MNT)
            UNDO.add("tmpfs", lambda: sh("umount", HOME_MNT))
        self.password = "Bench-" + secrets.token_urlsafe(18)
        sh("useradd", "--system", "--no-create-home", "--home-dir", HOME, "--shell", "/bin/bash",
           "--comment", USER_COMMENT, USER)
        UNDO.add("account", lambda: sh("userdel", "-f", USER))
        # chpasswd goes through PAM's common-password: yescrypt on Debian 12, as any account's
        # password set with passwd. BENCH_CRYPT=SHA512 (chpasswd -c) for a cheaper hash.
        method = os.environ.get("BENCH_CRYPT")
        sh("chpasswd", *(["-c", method] if method else []), input=f"{USER}:{self.password}\n")
        self.pw = pwd.getpwnam(USER)
        self.hash_kind, self.hash_ms = password_hash_cost(self.password)
        os.makedirs(HOME, exist_ok=True)
        os.chown(HOME, self.pw.pw_uid, self.pw.pw_gid)
        os.chmod(HOME, 0o755)
        for i in range(20):  # something to LIST
            p = os.path.join(HOME, f"file{i:02d}.txt")
            write_file(p, f"listing entry {i}\n")
            os.chown(p, self.pw.pw_uid, self.pw.pw_gid)
        self.netrc = os.path.join(WORK, "netrc")
        write_file(self.netrc, f"machine {HOST} login {USER} password {self.password}\n", 0o600)
        UNDO.add("netrc", lambda: os.unlink(self.netrc))
        # Empty files: the same sessions without data give each transfer's session cost.
        self.empty = os.path.join(WORK, "empty.bin")
        write_file(self.empty, "")
        empty_remote = os.path.join(HOME, "empty.bin")
        write_file(empty_remote, "")
        os.chown(empty_remote, self.pw.pw_uid, self.pw.pw_gid)
        self.data = os.path.join(HOME, "bench.bin")
        log(f"writing the {self.cfg.size // MiB} MiB test file")
        with open("/dev/urandom", "rb") as rnd, open(self.data, "wb") as out:
            left = self.cfg.size
            while left:
                chunk = rnd.read(min(left, 8 * MiB))
                out.write(chunk)
                left -= len(chunk)
        os.chown(self.data, self.pw.pw_uid, self.pw.pw_gid)

    def _pam(self):
        """One PAM stack for every server: the shipped pam.d/ftpsd, under the service name each
        server asks for (Pure-FTPd's is compiled in: pure-ftpd)."""
        stack = open(os.path.join(ROOT, "pam.d", "ftpsd")).read()
        for name in (PAM_SERVICE, "pure-ftpd"):
            path = os.path.join("/etc/pam.d", name)
            if os.path.exists(path):
                if open(path).read() == stack:
                    continue
                backup = path + ".ftpsdbench-saved"
                os.rename(path, backup)
                UNDO.add(f"restore {path}", lambda p=path, b=backup: os.rename(b, p))
            write_file(path, stack)
            UNDO.add(f"remove {path}", lambda p=path: os.path.exists(p) and os.unlink(p))

    def _sshd_prereqs(self):
        ssh = os.path.join(WORK, "ssh")
        self.host_key = os.path.join(ssh, "host_ed25519")
        self.client_key = os.path.join(ssh, "client_ed25519")
        for k in (self.host_key, self.client_key):
            if not os.path.exists(k):
                sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k)
        self.authorized_keys = os.path.join(ssh, "authorized_keys")
        write_file(self.authorized_keys, open(self.client_key + ".pub").read())
        # sshd's privilege separation needs its user and an empty root-owned /run/sshd.
        try:
            pwd.getpwnam("sshd")
        except KeyError:
            sh("useradd", "--system", "--no-create-home", "--home-dir", "/run/sshd", "--shell",
               "/usr/sbin/nologin", "--comment", "sshd privsep (ftpsd bench)", "sshd")
            UNDO.add("sshd account", lambda: sh("userdel", "-f", "sshd"))
        if not os.path.isdir("/run/sshd"):
            os.mkdir("/run/sshd", 0o755)
            UNDO.add("/run/sshd", lambda: os.rmdir("/run/sshd"))


def password_hash_cost(password):
    """The account's hash method and the CPU one check of it costs (what pam_unix pays at
    every login, whatever the server)."""
    import ctypes
    hashed = next(l.split(":")[1] for l in open("/etc/shadow") if l.startswith(USER + ":"))
    kind = {"$y$": "yescrypt", "$6$": "sha512crypt", "$5$": "sha256crypt",
            "$2b$": "bcrypt", "$gy$": "gost-yescrypt"}.get(hashed[:hashed.find("$", 1) + 1], "?")
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    t0 = time.process_time()
    for _ in range(5):
        assert lib.crypt(password.encode(), hashed.encode()).decode() == hashed
    return kind, (time.process_time() - t0) / 5 * 1000


def kill_cgroup(path):
    if os.path.exists(os.path.join(path, "cgroup.kill")):
        try:
            write_file(os.path.join(path, "cgroup.kill"), "1")
        except OSError:
            pass
    for _ in range(100):
        pids = cgroup_pids(path)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def cgroup_pids(path):
    try:
        with open(os.path.join(path, "cgroup.procs")) as fh:
            return [int(x) for x in fh.read().split()]
    except FileNotFoundError:
        return []


def cgroup_cpu(path):
    """(user, system) seconds of everything that ever ran in the cgroup."""
    v = {}
    with open(os.path.join(path, "cpu.stat")) as fh:
        for line in fh:
            k, n = line.split()
            v[k] = int(n)
    return v["user_usec"] / 1e6, v["system_usec"] / 1e6


# --- listeners -------------------------------------------------------------------------------

class Listener:
    """systemd-socket-activate --accept --inetd on HOST:port, started inside cgroup <name>, so
    that each connection's server, forked by it, is born in that cgroup: no process is moved
    between cgroups per connection. (An earlier version moved each session in with a shell
    writing cgroup.procs; that write waits for an RCU grace period and added about 15 ms to
    every server's greeting, which hid the differences between servers.) The listener's own
    CPU (accept and fork per connection) is taken out of the cgroup's, exactly, from
    /proc/PID/schedstat.

    setsid(1) makes each connection a session of its own, as systemd does for each instance of
    an Accept=yes service. Without it every session of a server would share the listener's
    session, hence (kernel autogroup scheduling, on by default) one CPU share against
    everything else on the machine, while a server that calls setsid() itself (vsftpd) would
    get one share per session."""

    def __init__(self, env, name, port, argv, setenv=()):
        self.name = name
        self.port = port
        self.cg = os.path.join(env.cg, name)
        os.makedirs(self.cg, exist_ok=True)
        cmd = ["systemd-socket-activate", "--accept", "--inetd", "-l", f"{HOST}:{port}"]
        for e in setenv:
            cmd += ["-E", e]
        cmd += [SETSID, "-w"] + list(argv)
        self.logpath = os.path.join(WORK, "logs", name + ".stderr")
        self.logfh = open(self.logpath, "w")
        procs_file = os.path.join(self.cg, "cgroup.procs")

        def enter():
            with open(procs_file, "w") as fh:
                fh.write(str(os.getpid()))

        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.logfh, preexec_fn=enter, start_new_session=True)
        UNDO.add(f"listener {name}", self.stop)
        deadline = time.time() + 10
        while time.time() < deadline:
            if "Listening on" in open(self.logpath).read():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"{name}: listener did not start: {open(self.logpath).read()}")

    def listener_cpu(self):
        """CPU seconds of the listener process itself (ns precision)."""
        with open(f"/proc/{self.proc.pid}/schedstat") as fh:
            return int(fh.read().split()[0]) / 1e9

    def cpu(self):
        """CPU seconds of everything that ran in the cgroup but the listener."""
        return sum(cgroup_cpu(self.cg)) - self.listener_cpu()

    def pids(self):
        """The session processes: the cgroup's, but the listener."""
        return [p for p in cgroup_pids(self.cg) if p != self.proc.pid]

    def wait_quiet(self, timeout=60):
        """Until every process of every session has exited (PAM close, reaping...)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.pids():
                return True
            time.sleep(0.02)
        log(f"{self.name}: session processes still running after {timeout}s: {self.pids()}")
        return False

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if os.path.isdir(self.cg):
            kill_cgroup(self.cg)
            os.rmdir(self.cg)
        self.logfh.close()


# --- the servers -----------------------------------------------------------------------------

def pasv_range(index, relaxed):
    """Server i gets 23000+1000*i .. +999: strict instance the first 900, relaxed the rest.
    Below the ephemeral range (32768-60999), so no client socket holds a passive port."""
    base = 23000 + 1000 * index
    return (base + 900, base + 999) if relaxed else (base, base + 899)


class FTPServer:
    """One FTP server: a strict listener (TLS and PROT P required) and a relaxed one (TLS
    required for login, PROT C allowed) for the clear-data measurements."""
    index = 0
    label = ""

    def __init__(self, env):
        self.env = env
        self.strict = self.listen(False)
        self.relaxed = self.listen(True)

    def port(self, relaxed):
        return PORT_BASE + 10 * self.index + (2 if relaxed else 1)

    def conf_path(self, relaxed, ext="conf"):
        return os.path.join(WORK, "conf", f"{self.name}-{'relaxed' if relaxed else 'strict'}.{ext}")

    def listen(self, relaxed):
        argv, setenv = self.command(relaxed)
        return Listener(self.env, f"{self.name}-{'relaxed' if relaxed else 'strict'}",
                        self.port(relaxed), argv, setenv)

    def listener(self, prot):
        return self.relaxed if prot == "C" else self.strict


class Ftpsd(FTPServer):
    name, label, index = "ftpsd", "ftpsd", 0

    def version(self):
        return ftpsd_build()

    def command(self, relaxed):
        lo, hi = pasv_range(self.index, relaxed)
        path = self.conf_path(relaxed)
        write_file(path, f"""# written by bench/bench.py
tls_cert_file = {self.env.cert}
tls_key_file = {self.env.key}
nopriv_user = nobody
empty_dir = {WORK}/empty
pam_service = {PAM_SERVICE}
write_enable = yes
pasv_min_port = {lo}
pasv_max_port = {hi}
require_prot_p = {'no' if relaxed else 'yes'}
require_session_reuse = yes
# The memory measurement holds 200 sessions of one account; the peers count none.
max_sessions_per_user = 0
# Not thousands of sessions in the machine's wtmp (the peers as configured write none).
wtmp_file =
""")
        sh(self.env.ftpsd, "-t", "-f", path)
        return [self.env.ftpsd, "-f", path], ()


class Vsftpd(FTPServer):
    name, label, index = "vsftpd", "vsftpd", 1
    binary = os.path.join(ROOTFS, "usr/sbin/vsftpd")

    def version(self):
        return "vsftpd " + pkg_version("vsftpd")

    def command(self, relaxed):
        lo, hi = pasv_range(self.index, relaxed)
        path = self.conf_path(relaxed)
        # session_support=YES: vsftpd then opens and closes a PAM session as ftpsd, ProFTPD and
        # Pure-FTPd do (it is off by default). ssl_request_cert=NO: the others ask for no client
        # certificate either. strict_ssl_read_eof=YES: an upload must end with close_notify, as
        # ftpsd's upload_require_close_notify=yes (default) wants.
        write_file(path, f"""# written by bench/bench.py
listen=NO
listen_ipv6=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
chroot_local_user=YES
allow_writeable_chroot=YES
secure_chroot_dir={WORK}/empty
nopriv_user=nobody
pam_service_name={PAM_SERVICE}
session_support=YES
pasv_enable=YES
pasv_min_port={lo}
pasv_max_port={hi}
ssl_enable=YES
rsa_cert_file={self.env.cert}
rsa_private_key_file={self.env.key}
ssl_ciphers=ECDHE+AESGCM:ECDHE+CHACHA20
ssl_request_cert=NO
force_local_logins_ssl=YES
force_local_data_ssl={'NO' if relaxed else 'YES'}
require_ssl_reuse=YES
strict_ssl_read_eof=YES
dirmessage_enable=NO
""")
        return [self.binary, path], ()


class Proftpd(FTPServer):
    name, label, index = "proftpd", "ProFTPD", 2
    binary = os.path.join(ROOTFS, "usr/sbin/proftpd")

    def version(self):
        return "ProFTPD " + pkg_version("proftpd-core")

    def command(self, relaxed):
        lo, hi = pasv_range(self.index, relaxed)
        path = self.conf_path(relaxed)
        tag = "relaxed" if relaxed else "strict"
        # DelayEngine off: mod_delay would pad every USER/PASS to hide timing, which the others
        # do not do. Session reuse on data connections is required by default (no
        # NoSessionReuseRequired), as in ftpsd and vsftpd.
        write_file(path, f"""# written by bench/bench.py
ServerType inetd
ServerName "proftpd bench"
DefaultServer on
UseIPv6 off
User nobody
Group nogroup
Umask 022
AllowOverwrite on
DefaultRoot ~
RequireValidShell off
UseReverseDNS off
DelayEngine off
ScoreboardFile {WORK}/run/proftpd-{tag}.scoreboard
PidFile {WORK}/run/proftpd-{tag}.pid
PassivePorts {lo} {hi}
ModulePath {ROOTFS}/usr/lib/proftpd
LoadModule mod_tls.c
AuthPAM on
AuthPAMConfig {PAM_SERVICE}
AuthOrder mod_auth_pam.c* mod_auth_unix.c
TLSEngine on
TLSRequired {'ctrl' if relaxed else 'on'}
TLSProtocol TLSv1.2 TLSv1.3
TLSCipherSuite ECDHE+AESGCM:ECDHE+CHACHA20
TLSECCertificateFile {self.env.cert}
TLSECCertificateKeyFile {self.env.key}
TLSVerifyClient off
TLSRenegotiate none
""")
        return [self.binary, "-c", path], ()


class Pureftpd(FTPServer):
    name, label, index = "pureftpd", "Pure-FTPd", 3
    binary = os.path.join(ROOTFS, "usr/sbin/pure-ftpd")

    def version(self):
        return "Pure-FTPd " + pkg_version("pure-ftpd")

    def command(self, relaxed):
        lo, hi = pasv_range(self.index, relaxed)
        # -Y 3: TLS for login and data; -Y 2: TLS for login, clear data allowed. -A: chroot
        # everyone; -E: no anonymous; -H: no reverse DNS; -c 1000: its default of 50 clients
        # (counted in /proc/net/tcp even in inetd mode) would refuse the idle-session test; with
        # -p it is capped at half the passive range. PAM service "pure-ftpd" (compiled in).
        return [self.binary, "-l", "pam", "-E", "-A", "-H", "-c", "1000",
                "-Y", "2" if relaxed else "3", "-2", f"{self.env.cert},{self.env.key}",
                "-p", f"{lo}:{hi}"], ()


SERVERS = [Ftpsd, Vsftpd, Proftpd, Pureftpd]


class Sshd:
    """OpenSSH's sshd -i (inetd mode) per connection, SFTP served by internal-sftp, the bench
    account logging in with a key (UsePAM no: a password login would need sshpass)."""
    name, label = "sshd", "OpenSSH SFTP"
    binary = os.path.join(ROOTFS, "usr/sbin/sshd")

    def __init__(self, env):
        self.env = env
        self.port = PORT_BASE + 50
        path = os.path.join(WORK, "conf", "sshd_config")
        write_file(path, f"""# written by bench/bench.py
HostKey {env.host_key}
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {env.authorized_keys}
StrictModes no
PermitRootLogin no
UseDNS no
PrintMotd no
PrintLastLog no
Subsystem sftp internal-sftp
Ciphers {SSH_CIPHER},chacha20-poly1305@openssh.com,aes128-gcm@openssh.com
""")
        sh(self.binary, "-t", "-f", path)
        self.listener = Listener(env, "sshd", self.port, [self.binary, "-i", "-f", path])

    def version(self):
        return "OpenSSH sshd " + pkg_version("openssh-server")


def ftpsd_build():
    """Which ftpsd was measured: the commit of the tree the binary sits in, whether src/ had
    changes not committed, and whether the binary is older than its sources."""
    tree = os.path.dirname(FTPSD)
    git = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    desc = git.stdout.strip() if git.returncode == 0 else "(no git)"
    dirty = subprocess.run(["git", "-C", tree, "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        desc += " with uncommitted changes in src/"
    srcs = [os.path.join(tree, "src", f) for f in os.listdir(os.path.join(tree, "src"))] \
        if os.path.isdir(os.path.join(tree, "src")) else []
    if srcs and max(os.path.getmtime(f) for f in srcs) > os.path.getmtime(FTPSD):
        desc += " (binary OLDER than src/: run make)"
    return f"ftpsd {desc}"


def pkg_version(pkg):
    try:
        for line in open(os.path.join(ROOTFS, ".versions")):
            f = line.split()
            if len(f) >= 2 and f[0] == pkg:
                return f[1]
    except OSError:
        pass
    return "?"



# --- running clients and reading counters ----------------------------------------------------

class Run:
    def __init__(self, rc, out, err, cpu, wall):
        self.rc, self.out, self.err, self.cpu, self.wall = rc, out, err, cpu, wall

    def json(self):
        for line in reversed(self.out.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"no JSON in client output: {self.out!r} {self.err[-2000:]!r}")


# BENCH_PIN=1: CPU placement during the transfers (pin_transfers), the server side on one core
# and the client on the other, so that the scheduler never puts both on one core for a while.
# Off by default: see bench/README.md for what it changes.
CPUS = sorted(os.sched_getaffinity(0))
PIN = {"server": None, "client": None}


def pin_transfers(listeners, on):
    """on: servers (the listeners, hence the sessions they fork from now on) on the first
    core, clients on the second; off: everything on every core again."""
    if len(CPUS) < 2 or os.environ.get("BENCH_PIN", "0") in ("", "0"):
        return
    if on:
        PIN.update(server={CPUS[0]}, client={CPUS[1]})
    else:
        PIN.update(server=None, client=None)
    for L in listeners:
        os.sched_setaffinity(L.proc.pid, PIN["server"] or set(CPUS))


def pinned(who):
    """preexec_fn for a process of the server ("server") or client ("client") side."""
    cpus = PIN[who]
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def run_client(argv, env=None, timeout=1800, cwd=None):
    """Runs a client to its end; its CPU (user+system, children included) comes from wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out,
                             stderr=err, env=env, cwd=cwd, preexec_fn=pinned("client"))
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        return Run(p.returncode, out.read().decode(errors="replace"),
                   err.read().decode(errors="replace"), ru.ru_utime + ru.ru_stime, wall)


HZ = os.sysconf("SC_CLK_TCK")


def machine_busy():
    """CPU seconds the whole machine spent busy (all cores), and stolen by the hypervisor."""
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = f
    return (user + nice + system + irq + softirq) / HZ, steal / HZ


class Sample:
    """Around one measured client run: the server's cgroup CPU, the machine's busy time."""

    def __init__(self, listener=None):
        self.listener = listener
        if listener:
            listener.wait_quiet()
            self.c0 = listener.cpu()
        self.b0, self.s0 = machine_busy()
        self.t0 = time.monotonic()

    def end(self, client_cpu, server_cpu=None):
        if self.listener:
            self.listener.wait_quiet()
            server_cpu = self.listener.cpu() - self.c0
        b1, s1 = machine_busy()
        wall = time.monotonic() - self.t0
        # What else ran meanwhile (other jobs on the machine), in cores: noise indicator.
        other = max(0.0, (b1 - self.b0) - server_cpu - client_cpu) / wall if wall > 0 else 0.0
        return {"server_cpu": server_cpu, "client_cpu": client_cpu, "other_cores": other,
                "steal_cores": (s1 - self.s0) / wall if wall > 0 else 0.0}


def ftpsload_env(env):
    e = dict(os.environ)
    e.update(FTPSLOAD_PASS=env.password, FTPSLOAD_CIPHERSUITES=SUITE13)
    return e


CURL_W = ('{"pre": %{time_pretransfer}, "start": %{time_starttransfer}, '
          '"total": %{time_total}, "down": %{size_download}, "up": %{size_upload}}\\n')


def curl_tls_lines(err):
    ciphers = re.findall(r"SSL connection using (\S+) / (\S+)", err)
    return {"tls": ciphers, "offered_resumption": "re-using session ID" in err}


# --- transfers -------------------------------------------------------------------------------

UPLOAD = "upload.bin"


def upload_path():
    return os.path.join(HOME, UPLOAD)


def remove_upload():
    try:
        os.unlink(upload_path())
    except FileNotFoundError:
        pass


def check_upload(size, who):
    try:
        got = os.path.getsize(upload_path())
    except FileNotFoundError:
        got = -1
    remove_upload()
    if got != size:
        raise RuntimeError(f"{who}: upload stored {got} bytes, not {size}")


def curl_xfer_argv(env, listener, op, prot, empty=False):
    argv = ["curl", "-sS", "-v", "--netrc-file", env.netrc, "--cacert", env.cert,
            "--tls13-ciphers", SUITE13, "--ciphers", CIPHER12, "--max-time", "1500",
            "-w", CURL_W]
    argv += ["--ssl-reqd"] if prot == "P" else ["--ftp-ssl-control"]
    url = f"ftp://{HOST}:{listener.port}/"
    if op == "retr":
        argv += [url + ("empty.bin" if empty else "bench.bin"), "-o", "/dev/null"]
    else:
        argv += ["-T", env.empty if empty else env.data, url + UPLOAD]
    return argv


def with_base(fn, *args):
    """fn(..., empty=True) then fn(..., empty=False): the same session moving 0 bytes, whose
    CPU is what the session costs besides the data (kept as *_base)."""
    base = fn(*args, empty=True)
    m = fn(*args, empty=False)
    m["server_cpu_base"] = base["server_cpu"]
    m["client_cpu_base"] = base["client_cpu"]
    m["client_busy"] = max(0.0, m["client_cpu"] - base["client_cpu"]) / m["seconds"]
    return m


def ftpsload_xfer_argv(env, listener, op, prot, empty=False):
    argv = [os.path.join(BIN, "ftpsload"), op, HOST, listener.port, USER]
    if op == "retr":
        argv.append("empty.bin" if empty else "bench.bin")
    else:
        argv += [UPLOAD, env.empty if empty else env.data]
    return argv + (["C"] if prot == "C" else [])


def xfer_ftp(env, server, op, prot, empty=False, client="ftpsload"):
    """One session, one RETR (to nowhere) or STOR (from the page-cached file). client:
    "ftpsload" (the bench's C client, which keeps up with any server here) or "curl"."""
    L = server.listener(prot)
    s = Sample(L)
    if client == "curl":
        r = run_client(curl_xfer_argv(env, L, op, prot, empty))
    else:
        r = run_client(ftpsload_xfer_argv(env, L, op, prot, empty), env=ftpsload_env(env))
    m = s.end(r.cpu)
    if r.rc != 0:
        raise RuntimeError(f"{server.name} {op} PROT {prot}: {client} failed: {r.err[-1500:]}")
    j = r.json()
    size = 0 if empty else env.cfg.size
    if client == "curl":
        moved = int(j["down"] if op == "retr" else j["up"])
        m["seconds"] = j["total"] - j["pre"]
        m["session_seconds"] = j["total"]
        m.update(curl_tls_lines(r.err))
    else:
        moved = j["bytes"]
        m["seconds"] = j["xfer_s"]
        m["session_seconds"] = j["total_s"]
        m["tls"] = [("", j["cipher"])]
    if moved != size:
        raise RuntimeError(f"{server.name} {op}: moved {moved} bytes, not {size}")
    if op == "stor":
        check_upload(size, server.name)
    m["bytes"] = size
    return m


def xfer_ftp_curl(env, server, op, prot, empty=False):
    return xfer_ftp(env, server, op, prot, empty, client="curl")


def xfer_pump(env, op, prot, empty=False, client="curl", server_env=()):
    """The ceiling: tlspump, one connection doing nothing but the transfer. client="curl": its
    HTTP mode with curl as the client (the same client as the FTP runs); "pair": its own C
    client. server_env: variables for the server side only (the data-path variants)."""
    port = PORT_BASE + 60
    flags = (["plain"] if prot == "C" else []) + (["http"] if client == "curl" else [])
    src = env.empty if empty else env.data
    srv_file = src if op == "retr" else upload_path()
    penv = dict(os.environ, TLSPUMP_CIPHERSUITES=SUITE13)
    srv = subprocess.Popen([os.path.join(BIN, "tlspump"), "server", str(port),
                            "send" if op == "retr" else "recv", srv_file, env.cert, env.key]
                           + flags, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=dict(penv, **dict(server_env)), preexec_fn=pinned("server"))
    if srv.stdout.readline().strip() != b"listening":
        raise RuntimeError("tlspump server did not start: " + srv.stderr.read().decode())
    s = Sample()
    if client == "curl":
        url = f"{'http' if prot == 'C' else 'https'}://{HOST}:{port}/file"
        argv = ["curl", "-sS", "-v", "--cacert", env.cert, "--tls13-ciphers", SUITE13,
                "-H", "Expect:", "--max-time", "1500", "-w", CURL_W]
        argv += [url, "-o", "/dev/null"] if op == "retr" else ["-T", src, url]
    else:
        argv = [os.path.join(BIN, "tlspump"), "client", port, "recv" if op == "retr" else "send",
                "/dev/null" if op == "retr" else src] + (["plain"] if prot == "C" else [])
    r = run_client(argv, env=penv)
    _, status, ru = os.wait4(srv.pid, 0)
    srv.returncode = os.waitstatus_to_exitcode(status)
    err = srv.stderr.read().decode(errors="replace")
    srv.stdout.close()
    srv.stderr.close()
    m = s.end(r.cpu, ru.ru_utime + ru.ru_stime)
    if r.rc != 0 or srv.returncode != 0:
        raise RuntimeError(f"tlspump {op} {prot} ({client}) failed: {r.err[-1500:]} {err}")
    j = r.json()
    size = 0 if empty else env.cfg.size
    if client == "curl":
        moved = int(j["down"] if op == "retr" else j["up"])
        m.update(seconds=j["total"] - j["pre"], session_seconds=j["total"])
        m.update(curl_tls_lines(r.err))
    else:
        moved = j["bytes"]
        m.update(seconds=j["xfer_s"], tls=[("", j["cipher"])])
    if moved != size:
        raise RuntimeError(f"tlspump ({client}) moved {moved} bytes, not {size}")
    if op == "stor":
        check_upload(size, "tlspump")
    m["bytes"] = size
    return m


def xfer_pump_pair(env, op, prot, empty=False):
    return xfer_pump(env, op, prot, empty, client="pair")


def xfer_s_server(env, op, prot, empty=False):
    """`openssl s_server -WWW` sending the file over HTTPS to curl: the same client as the FTP
    runs against a stock OpenSSL server (downloads only: s_server takes no uploads)."""
    port = PORT_BASE + 61
    srv = subprocess.Popen(["openssl", "s_server", "-WWW", "-naccept", "1", "-accept",
                            f"{HOST}:{port}", "-cert", env.cert, "-key", env.key,
                            "-ciphersuites", SUITE13], cwd=HOME, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           preexec_fn=pinned("server"))
    while True:
        line = srv.stdout.readline()
        if not line or line.strip() == b"ACCEPT":
            break
    s = Sample()
    name = "empty.bin" if empty else "bench.bin"
    r = run_client(["curl", "-sS", "-v", "--cacert", env.cert, "--tls13-ciphers", SUITE13,
                    "-w", CURL_W, f"https://{HOST}:{port}/{name}", "-o", "/dev/null"])
    srv.stdout.read()
    _, status, ru = os.wait4(srv.pid, 0)
    srv.returncode = os.waitstatus_to_exitcode(status)
    srv.stdout.close()
    m = s.end(r.cpu, ru.ru_utime + ru.ru_stime)
    j = r.json()
    size = 0 if empty else env.cfg.size
    if r.rc != 0 or int(j["down"]) != size:
        raise RuntimeError(f"s_server download failed: {r.err[-1500:]}")
    m.update(seconds=j["total"] - j["pre"], session_seconds=j["total"], bytes=size)
    m.update(curl_tls_lines(r.err))
    return m


def sftp_argv(env, sshd, batch):
    return ["sftp", "-F", "/dev/null", "-q", "-b", batch, "-i", env.client_key,
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", f"Ciphers={SSH_CIPHER}", "-P", str(sshd.port),
            f"{USER}@{HOST}"]


def sftp_once(env, sshd, line):
    batch = os.path.join(WORK, "conf", "sftp.batch")
    write_file(batch, line + "\n")
    s = Sample(sshd.listener)
    r = run_client(sftp_argv(env, sshd, batch))
    m = s.end(r.cpu)
    if r.rc != 0:
        raise RuntimeError(f"sftp {line!r} failed: {r.err[-1500:]}")
    m["wall"] = r.wall
    return m


def xfer_sftp(env, sshd, op, prot, baseline):
    """sftp get (to /dev/null) or put. An empty session (pwd) measured alongside is subtracted
    from the wall time (there is no other way to tell the data phase) and kept as the session
    CPU cost (server_cpu_base) for the net figures."""
    line = "get bench.bin /dev/null" if op == "retr" else f"put {env.data} {UPLOAD}"
    m = sftp_once(env, sshd, line)
    if op == "stor":
        check_upload(env.cfg.size, "sftp")
    m["session_seconds"] = m["wall"]
    m["seconds"] = m["wall"] - baseline["wall"]
    m["server_cpu_base"] = baseline["server_cpu"]
    m["client_cpu_base"] = baseline["client_cpu"]
    m["client_busy"] = max(0.0, m["client_cpu"] - baseline["client_cpu"]) / m["seconds"]
    m["bytes"] = env.cfg.size
    m["tls"] = [("SSH", SSH_CIPHER)]
    return m


def sftp_baseline(env, sshd):
    runs = [sftp_once(env, sshd, "pwd") for _ in range(3)]
    return {k: statistics.median(r[k] for r in runs) for k in ("wall", "server_cpu",
                                                              "client_cpu")}


def storage_reference(env):
    """dd with 256 KiB blocks on the bench's file system: what reading the file and writing a
    new one cost without any network (STOR is bounded by the second). Writes are repeated 10
    times and the slowest is kept too: on this VM about one write in ten into tmpfs takes 3-4x
    the CPU (all of it the kernel's copy into the new pages), whoever writes, and the STOR rows
    inherit those outliers."""
    out = {}
    for what, argv, n in (("read", ["dd", f"if={env.data}", "of=/dev/null", "bs=256K"], 3),
                          ("write", ["dd", f"if={env.data}", f"of={upload_path()}", "bs=256K"],
                           10)):
        runs = []
        for _ in range(n):
            r = run_client(argv)
            remove_upload()
            runs.append((env.cfg.size / r.wall / MiB, r.cpu / (env.cfg.size / GiB)))
        out[what] = [med([x[0] for x in runs]), med([x[1] for x in runs]),
                     min(x[0] for x in runs), max(x[1] for x in runs)]
    fs = sh("stat", "-f", "-c", "%T", HOME).stdout.strip()
    out["fs"] = fs
    return out


# --- sessions and memory ---------------------------------------------------------------------

def sessions(env, server, count, conc):
    L = server.strict
    s = Sample(L)
    r = run_client([os.path.join(BIN, "ftpsload"), "sessions", HOST, L.port, USER, count, conc],
                   env=ftpsload_env(env))
    m = s.end(r.cpu)
    j = r.json()
    if j["failures"]:
        log(f"{server.name}: {j['failures']} of {count} sessions failed: {r.err.strip()[:300]}")
    m.update(sessions=j["sessions"], failures=j["failures"], seconds=j["wall"],
             steps_ms=j.get("steps_ms", {}))
    return m


def smaps_rollup(pid):
    v = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                f = line.split()
                if len(f) >= 3 and f[2] == "kB":
                    v[f[0].rstrip(":")] = int(f[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return v


MAP_CLASSES = [("libcrypto", "libcrypto.so"), ("libssl", "libssl.so"), ("libc", "libc.so"),
               ("heap", "[heap]"), ("stack", "[stack]")]


def map_class(name):
    for cls, key in MAP_CLASSES:
        if key in name:
            return cls
    if name in ("", "[anon]") or name.startswith("[anon"):
        return "anonymous"
    if ".so" in name:
        return "other libraries"
    return "program and other"


def process_role(pid):
    """ftpsd's process of a session, by identity: the monitor is root, the front the
    unprivileged nopriv_user (nobody), the user process the logged-in user."""
    with open(f"/proc/{pid}/status") as fh:
        uid = int(re.search(r"^Uid:\s+(\d+)", fh.read(), re.M).group(1))
    return "monitor" if uid == 0 else "front" if uid == pwd.getpwnam("nobody").pw_uid else "user"


def pss_by_mapping(pid):
    """{class: PSS KiB} of one process, from /proc/PID/smaps."""
    out = {}
    cls = None
    try:
        with open(f"/proc/{pid}/smaps") as fh:
            for line in fh:
                f = line.split()
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    cls = map_class(f[5] if len(f) > 5 else "")
                elif f[0] == "Pss:":
                    out[cls] = out.get(cls, 0) + int(f[1])
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return out


def idle_memory(env, server, count):
    L = server.strict
    L.wait_quiet()
    p = subprocess.Popen([os.path.join(BIN, "ftpsload"), "idle", HOST, str(L.port), USER,
                          str(count)], env=ftpsload_env(env), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stdout.readline().decode()
    if not line.startswith("ready"):
        p.kill()
        p.wait()
        raise RuntimeError(f"{server.name}: idle sessions failed: {p.stderr.read().decode()}")
    time.sleep(1.0)  # let every session settle (PAM, forks) before reading memory
    pids = L.pids()
    m = memory_sum(pids, count)
    where = {}  # ftpsd: {role: {mapping class: PSS KiB}}, summed over the sessions
    for pid in pids if server.name == "ftpsd" else []:
        try:
            role = where.setdefault(process_role(pid), {})
        except (FileNotFoundError, ProcessLookupError):
            continue
        for cls, kib in pss_by_mapping(pid).items():
            role[cls] = role.get(cls, 0) + kib / count
    p.stdin.close()
    p.wait(timeout=120)
    p.stdout.close()
    p.stderr.close()
    L.wait_quiet()
    return dict(m, where=where)


def memory_sum(pids, count):
    """RSS, PSS and USS (private clean + dirty) of pids from smaps_rollup, per session."""
    tot = {"Rss": 0, "Pss": 0, "Uss": 0}
    n = 0
    for pid in pids:
        v = smaps_rollup(pid)
        if not v:
            continue
        n += 1
        tot["Rss"] += v.get("Rss", 0)
        tot["Pss"] += v.get("Pss", 0)
        tot["Uss"] += v.get("Private_Clean", 0) + v.get("Private_Dirty", 0)
    return {"sessions": count, "processes": n, "rss_kib": tot["Rss"] / count,
            "pss_kib": tot["Pss"] / count, "uss_kib": tot["Uss"] / count,
            "procs_per_session": n / count}


def pam_cost(env):
    """bench/pamcost.c: CPU of pam_authenticate for the bench account, and of its crypt_r()."""
    r = run_client([os.path.join(BIN, "pamcost"), PAM_SERVICE, USER, 20],
                   env=dict(os.environ, PAMCOST_PASS=env.password))
    if r.rc != 0:
        raise RuntimeError(f"pamcost failed: {r.err}")
    return r.json()


def idle_floor(env, count):
    """Table 5's floor: count connections to tlspump's inetd idle mode, started per connection
    like the FTP servers: one process that loaded OpenSSL, its certificate and key, did one TLS
    handshake and waits. Less than this no server started per connection with OpenSSL can hold
    per idle TLS session; summed and divided like idle_memory(). cpu_ms: the server CPU of one
    such connection, start to exit (table 4's floor)."""
    L = Listener(env, "tlspump-idle", PORT_BASE + 62,
                 [os.path.join(BIN, "tlspump"), "idle", env.cert, env.key],
                 setenv=[f"TLSPUMP_CIPHERSUITES={SUITE13}"])
    ctx = ssl.create_default_context(cafile=env.cert)
    conns = []
    try:
        for _ in range(count):
            raw = socket.create_connection((HOST, L.port), timeout=30)
            conns.append(ctx.wrap_socket(raw, server_hostname="localhost"))
        time.sleep(1.0)
        m = memory_sum(L.pids(), count)
    finally:
        for c in conns:
            c.close()
        L.wait_quiet()
        cpu = L.cpu()
        L.stop()
    return dict(m, cpu_ms=1000 * cpu / count)


def tls_check(env, server):
    """One small PROT P download with ftpsload: the negotiated suite and whether the data
    connection resumed the control connection's session."""
    small = os.path.join(HOME, "small.bin")
    if not os.path.exists(small):
        with open(small, "wb") as fh:
            fh.write(os.urandom(MiB))
        os.chown(small, env.pw.pw_uid, env.pw.pw_gid)
    r = run_client([os.path.join(BIN, "ftpsload"), "retr", HOST, server.strict.port, USER,
                    "small.bin"], env=ftpsload_env(env))
    if r.rc != 0:
        raise RuntimeError(f"{server.name}: PROT P download failed: {r.err}")
    return r.json()["cipher"]


# --- the run ---------------------------------------------------------------------------------

TESTS = [("retr", "P"), ("stor", "P"), ("retr", "C"), ("stor", "C")]
# The ceiling is tlspump, the minimal OpenSSL sender/receiver pair; CURL_CEILING is tlspump
# serving curl, the ceiling of the rows measured with curl as the FTP client.
CEILING = "tlspump_pair"
CURL_CEILING = "tlspump"
CURL = "+curl"  # suffix of the FTP rows measured with curl
FLOOR = "tlspump_idle"  # table 5's floor: tlspump's inetd idle mode


def rotate(items, k):
    k %= len(items)
    return items[k:] + items[:k]


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def run_all(cfg):
    t_start = time.monotonic()
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": cfg.quick,
            "size_mib": cfg.size // MiB, "reps": cfg.reps, "xfer_reps": cfg.xfer_reps, "sessions": cfg.sessions,
            "concurrency": cfg.concurrency, "idle": cfg.idle, "cpu": cpu_model(),
            "cores": os.cpu_count(), "kernel": os.uname().release,
            "openssl": sh("openssl", "version").stdout.strip(),
            "curl": sh("curl", "--version").stdout.splitlines()[0],
            "loadavg_start": open("/proc/loadavg").read().split()[:3],
            "suite13": SUITE13, "cipher12": CIPHER12, "ssh_cipher": SSH_CIPHER}
    env = Env(cfg)
    servers = [cls(env) for cls in SERVERS]
    sshd = Sshd(env)
    meta["versions"] = {s.name: s.version() for s in servers + [sshd]}
    meta["password_hash"] = [env.hash_kind, env.hash_ms]
    pam_runs = [pam_cost(env)]
    log(f"PAM: {pam_runs[0]}")
    log("servers up:", ", ".join(f"{s.name} :{s.strict.port}/:{s.relaxed.port}"
                                 for s in servers), f"sshd :{sshd.port}")

    tls = {}
    for s in servers:  # warm-up, and what TLS each one negotiates
        run_client([os.path.join(BIN, "ftpsload"), "sessions", HOST, s.strict.port, USER, 2, 1],
                   env=ftpsload_env(env))
        tls[s.name] = tls_check(env, s)
    sftp_baseline(env, sshd)
    meta["storage"] = storage_reference(env)

    xfer = {}
    listeners = [L for s in servers for L in (s.strict, s.relaxed)] + [sshd.listener]
    pin_transfers(listeners, True)
    meta["pinned"] = PIN["server"] is not None
    for rep in range(cfg.xfer_reps):
        for op, prot in TESTS:
            who = [s.name for s in servers] + [s.name + CURL for s in servers]
            who += [CEILING, CURL_CEILING]
            if prot == "P":
                who.append("sftp")
                if op == "retr":
                    who.append("s_server")
            baseline = sftp_baseline(env, sshd) if "sftp" in who else None
            for name in rotate(who, rep):
                if name == CURL_CEILING:
                    m = with_base(xfer_pump, env, op, prot)
                elif name == CEILING:
                    m = with_base(xfer_pump_pair, env, op, prot)
                elif name.endswith(CURL):
                    m = with_base(xfer_ftp_curl, env,
                                  next(s for s in servers if s.name + CURL == name), op, prot)
                elif name == "sftp":
                    m = xfer_sftp(env, sshd, op, prot, baseline)
                elif name == "s_server":
                    m = with_base(xfer_s_server, env, op, prot)
                else:
                    m = with_base(xfer_ftp, env, next(s for s in servers if s.name == name),
                                  op, prot)
                xfer.setdefault(f"{name} {op} {prot}", []).append(m)
                log(f"rep {rep + 1}/{cfg.xfer_reps} {op.upper()} PROT {prot} {name:9s} "
                    f"{m['bytes'] / m['seconds'] / MiB:8.1f} MiB/s  server "
                    f"{m['server_cpu'] / (m['bytes'] / GiB):6.3f} s/GiB  client "
                    f"{m['client_cpu'] / (m['bytes'] / GiB):6.3f} s/GiB  "
                    f"(other load {m['other_cores']:.2f} cores)")

    pin_transfers(listeners, False)
    sess = {}
    for rep in range(cfg.reps):
        # The hash's cost drifts with the machine's state (20% between runs here): measured in
        # every repetition, beside the sessions it is taken out of.
        pam_runs.append(pam_cost(env))
        for conc in (1, cfg.concurrency):
            for s in rotate(servers, rep):
                m = sessions(env, s, cfg.sessions, conc)
                sess.setdefault(f"{s.name} {conc}", []).append(m)
                log(f"rep {rep + 1}/{cfg.reps} sessions x{conc:<3d} {s.name:9s} "
                    f"{m['sessions'] / m['seconds']:7.1f}/s  server "
                    f"{1000 * m['server_cpu'] / cfg.sessions:6.1f} ms  client "
                    f"{1000 * m['client_cpu'] / cfg.sessions:5.1f} ms per session")

    meta["pam"] = {k: statistics.median(r[k] for r in pam_runs[1:]) for k in pam_runs[0]}
    meta["pam"]["crypt_calls"] = pam_runs[0]["crypt_calls"]
    log(f"PAM, median of the repetitions: {meta['pam']}")
    mem = {}
    for s in servers:
        mem[s.name] = idle_memory(env, s, cfg.idle)
        log(f"idle x{cfg.idle} {s.name:9s} PSS {mem[s.name]['pss_kib']:7.0f} KiB/session")
    mem[FLOOR] = idle_floor(env, cfg.idle)
    log(f"idle x{cfg.idle} floor     PSS {mem[FLOOR]['pss_kib']:7.0f} KiB/connection")

    meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    meta["duration_s"] = time.monotonic() - t_start
    raw = {"meta": meta, "tls": tls, "xfer": xfer, "sessions": sess, "memory": mem,
           "servers": [(s.name, s.label) for s in servers]}
    with open(os.path.join(WORK, "results.json"), "w") as fh:
        json.dump(raw, fh, indent=1)
    text = report(raw)
    with open(os.path.join(BENCH, "results.md"), "w") as fh:
        fh.write(text)
    print(text)
    log(f"done in {meta['duration_s'] / 60:.1f} min; bench/results.md written")


# --- the report ------------------------------------------------------------------------------

def med(xs):
    return statistics.median(xs) if xs else None


def fmt(v, nd=0):
    return "–" if v is None else f"{v:,.{nd}f}"


def paired_ratios(xfer, name, others, op, prot, what):
    """Per repetition: name's figure over the best of others' in the same repetition (they ran
    back to back, seconds apart). what: "mibs" (best = highest) or "server" (CPU s/GiB, best =
    lowest). None when a repetition is missing."""
    def fig(n, i):
        r = xfer[f"{n} {op} {prot}"][i]
        return r["bytes"] / r["seconds"] if what == "mibs" else r["server_cpu"] / r["bytes"]
    runs = [xfer.get(f"{n} {op} {prot}") or [] for n in [name] + others]
    k = min(len(r) for r in runs)
    if k == 0:
        return None
    pick = max if what == "mibs" else min
    return [fig(name, i) / pick(fig(n, i) for n in others) for i in range(k)]


def paired_table(w, xfer, ftp_names, cols):
    """Table 1b: ftpsd against the best peer and the ceiling, repetition by repetition."""
    peers = [n for n in ftp_names if n != "ftpsd"]
    if "ftpsd" not in ftp_names or not peers:
        return
    w("### 1b. ftpsd's ratios, repetition by repetition\n")
    w("Each repetition runs every server's and the ceiling's transfer back to back, seconds "
      "apart; single transfers on this machine spread by ±20% from one minute to the next, and "
      "a ratio of two medians (table 1) can land on either side of a target. Here: ftpsd's "
      "figure over the best peer's (or the ceiling's) of the same repetition, median and "
      "range over the repetitions.\n")
    w("| | " + " | ".join(cols) + " |")
    w("|---|" + "---|" * len(cols))
    rows = [("throughput / best peer's", peers, "mibs"),
            ("throughput / ceiling's", [CEILING], "mibs"),
            ("server CPU per GiB / lowest peer's", peers, "server"),
            ("server CPU per GiB / ceiling's", [CEILING], "server")]
    for label, others, what in rows:
        cells = []
        for op, prot in TESTS:
            r = paired_ratios(xfer, "ftpsd", others, op, prot, what)
            cells.append(f"{med(r):.2f} ({min(r):.2f}–{max(r):.2f})" if r else "–")
        w(f"| {label} | " + " | ".join(cells) + " |")
    w("")


def report(raw):
    meta, xfer = raw["meta"], raw["xfer"]
    servers = raw["servers"]
    ftp_names = [n for n, _ in servers]
    labels = dict(servers)
    labels.update({f"{n}{CURL}": f"{labels[n]} (curl)" for n in ftp_names})
    labels.update({CEILING: "ceiling: tlspump ↔ tlspump (C pair)",
                   CURL_CEILING: "tlspump ↔ curl (HTTP(S))",
                   "s_server": "openssl s_server -WWW → curl (HTTPS)",
                   "sftp": f"OpenSSH SFTP ({meta['ssh_cipher']})"})

    def stat(name, op, prot, what):
        runs = xfer.get(f"{name} {op} {prot}")
        if not runs:
            return None
        if what == "mibs":
            return med([r["bytes"] / r["seconds"] / MiB for r in runs])
        if what == "server":
            return med([r["server_cpu"] / (r["bytes"] / GiB) for r in runs])
        if what == "client":
            return med([r["client_cpu"] / (r["bytes"] / GiB) for r in runs])
        if what == "client_busy":
            return med([r["client_busy"] for r in runs])
        if what == "other":
            return max(r["other_cores"] for r in runs)

    cols = [f"{op.upper()} PROT {prot}" for op, prot in TESTS]
    out = []
    w = out.append
    w("# ftpsd benchmarks\n")
    w(f"Run {meta['started']}, {'QUICK mode' if meta['quick'] else 'full run'}: "
      f"{meta['size_mib']} MiB file, {meta.get('xfer_reps', meta['reps'])} runs of each "
      f"transfer and {meta['reps']} of each session test (median shown), "
      f"{meta['sessions']} sessions sequential and with {meta['concurrency']} concurrent "
      f"clients, {meta['idle']} idle sessions. Duration {meta['duration_s'] / 60:.1f} min.\n")
    w(f"Machine: {meta['cpu']}, {meta['cores']} cores, Linux {meta['kernel']}; "
      f"{meta['openssl']}; {meta['curl']}. Load average at start "
      f"{' '.join(meta['loadavg_start'])}, at end {' '.join(meta['loadavg_end'])}.\n")
    w("Servers: " + "; ".join(f"{v}" for v in meta["versions"].values()) + ".\n")
    st = meta.get("storage")
    if st:
        slow = (f"; the slowest of its writes: {st['write'][2]:,.0f} MiB/s "
                f"({st['write'][3]:.2f} CPU s/GiB), an outlier every server's STOR rows meet "
                f"too" if len(st["write"]) > 2 else "")
        w(f"Files on {st['fs']}; dd with 256 KiB blocks reads the file at "
          f"{st['read'][0]:,.0f} MiB/s ({st['read'][1]:.2f} CPU s/GiB) and writes a new one at "
          f"{st['write'][0]:,.0f} MiB/s ({st['write'][1]:.2f} CPU s/GiB){slow}: the storage "
          "side alone, no network.\n")
    w(f"Every TLS connection uses {meta['suite13']} (the only TLS 1.3 suite the clients offer; "
      f"{meta['cipher12']} for TLS 1.2). Negotiated on an ftpsload PROT P download (data "
      "connection):\n")
    w("| server | data connection TLS | curl saw (control, data) |")
    w("|---|---|---|")
    for n in ftp_names:
        runs = xfer.get(f"{n}{CURL} retr P") or []
        seen = ", ".join(f"{a} {b}" for a, b in runs[0]["tls"]) if runs else "–"
        w(f"| {labels[n]} | {raw['tls'].get(n, '–')} | {seen} |")
    w("")

    def net(n, op, prot, who="server"):
        runs = xfer.get(f"{n} {op} {prot}")
        if not runs:
            return None
        return med([(r[f"{who}_cpu"] - r.get(f"{who}_cpu_base", 0.0)) / (r["bytes"] / GiB)
                    for r in runs])

    def value(n, op, prot, what):
        return net(n, op, prot) if what == "net" else stat(n, op, prot, what)

    def table(what, better, nd, rows, peers, ceiling):
        """rows against the best of peers and against ceiling, each column its own."""
        w("| | " + " | ".join(cols) + " |")
        w("|---|" + "---|" * len(cols))
        for n in rows:
            cells = []
            for op, prot in TESTS:
                v = value(n, op, prot, what)
                if v is None:
                    cells.append("–")
                    continue
                if n == ceiling or v <= 0:
                    cells.append(fmt(v, nd))
                    continue
                best = [x for x in (value(p, op, prot, what) for p in peers) if x and x > 0]
                best = better(best) if best else None
                ceil = value(ceiling, op, prot, what)
                r1 = f"{v / best:.2f}" if best else "–"
                r2 = f"{v / ceil:.2f}" if ceil and ceil > 0 else "–"
                cells.append(f"{fmt(v, nd)} ({r1} / {r2})")
            name = f"**{labels[n]}**" if n == "ftpsd" else labels[n]
            w(f"| {name} | " + " | ".join(cells) + " |")
        w("")

    def client_table(rows):
        w("| | " + " | ".join(cols) + " |")
        w("|---|" + "---|" * len(cols))
        for n in rows:
            cells = []
            for op, prot in TESTS:
                v = net(n, op, prot, "client")
                b = stat(n, op, prot, "client_busy")
                cells.append("–" if v is None else f"{v:.3f} ({100 * b:.0f}%)")
            w(f"| {labels[n]} | " + " | ".join(cells) + " |")
        w("")

    main_rows = ftp_names + ["sftp", CEILING]
    ratios = ("In brackets: ratio to the best FTP server, ratio to the ceiling (tlspump ↔ "
              "tlspump: a minimal OpenSSL sender and receiver, one connection, nothing but the "
              "bytes; PROT C: its clear-text mode).\n")
    w("## 1. Single-stream throughput, MiB/s (higher is better)\n")
    w("FTP client: ftpsload (C, OpenSSL; read-ahead into 256 KiB, 256 KiB blocks, a 1 MiB "
      "buffering BIO, as tlspump's client), so that the client is not what limits a transfer (table 3). " + ratios)
    table("mibs", max, 0, main_rows, ftp_names, CEILING)
    w("From the 150 reply to the 226: the data TLS handshake, the bytes, close_notify. SFTP: "
      "wall time of `sftp -b` minus an empty session." +
      (" During the transfers every server process runs on the first core and every client "
       "on the second (CPU affinity), the same for all." if meta.get("pinned") else "") +
      "\n")
    paired_table(w, xfer, ftp_names, cols)
    w("## 2. Server CPU seconds per GiB (lower is better)\n")
    w(ratios)
    table("server", min, 3, main_rows, ftp_names, CEILING)
    w("All processes of the session (cgroup v2 cpu.stat of the server's cgroup, read after "
      "every process of the session has exited), login and teardown included.\n")
    w("### 2b. The same, net of the session: the data path only (lower is better)\n")
    w("Table 2 minus the server CPU of the same session moving 0 bytes, measured just before "
      "each transfer (SFTP: an sftp session running pwd). " + ratios)
    table("net", min, 3, main_rows, ftp_names, CEILING)
    w("## 3. Client CPU per GiB, and share of one core during the data phase\n")
    client_table(main_rows)
    w("Net of the same client session moving 0 bytes, like table 2b; the share is that CPU "
      "over the data phase of table 1. A client well below 100% of a core is not what limits "
      "the transfer (ftpsload for FTP, tlspump's client for the ceiling, sftp and its ssh for "
      "SFTP).\n")
    curl_rows = [n + CURL for n in ftp_names] + ["s_server", CURL_CEILING]
    w("## 3b. The same transfers with curl as the client\n")
    w("curl 7.88 (`-o /dev/null`, `-T` from the page-cached file) in place of ftpsload, "
      "throughput from its time_pretransfer to the end; the ceiling of these rows is tlspump "
      "serving curl over HTTP(S), `openssl s_server -WWW` a stock OpenSSL server. curl reads "
      "16 KiB at a time and near one core it is what limits the faster servers: compare its "
      "share of a core below. In brackets: ratio to the best FTP server with curl, ratio to "
      "tlspump ↔ curl.\n")
    w("Throughput, MiB/s:\n")
    table("mibs", max, 0, curl_rows, curl_rows[:-2], CURL_CEILING)
    w("Server CPU seconds per GiB, net of the session:\n")
    table("net", min, 3, curl_rows, curl_rows[:-2], CURL_CEILING)
    w("Client CPU per GiB (share of one core):\n")
    client_table(curl_rows)

    sess = raw["sessions"]
    conc = meta["concurrency"]
    n_s = meta["sessions"]

    def sstat(n, c, what):
        runs = sess.get(f"{n} {c}") or []
        if not runs:
            return None
        if what == "rate":
            return med([r["sessions"] / r["seconds"] for r in runs])
        if what == "server":
            return med([1000 * r["server_cpu"] / n_s for r in runs])
        if what == "client":
            return med([1000 * r["client_cpu"] / n_s for r in runs])
        if what == "fail":
            return sum(r["failures"] for r in runs)

    w(f"## 4. Session cost: connect, AUTH TLS, USER/PASS (PAM), PBSZ 0, PROT P, EPSV, LIST "
      f"(TLS data, resumed where the server allows), QUIT\n")
    hk, hms = meta.get("password_hash", ["?", 0])
    pam = meta.get("pam") or {}
    hashes_ms = pam.get("crypt_calls", 1) * pam.get("crypt_ms", hms)
    w(f"{n_s} sessions per run with ftpsload (C, OpenSSL), sequential and with {conc} "
      "concurrent clients; median of the runs. In brackets: ratio to the best FTP server.\n")
    if pam:
        w(f"What PAM costs every server alike (bench/pamcost.c, a fresh process per check, as "
          f"in a server started per connection; 20 checks before each repetition of the "
          f"session runs, median): pam_start + pam_authenticate + pam_end for "
          f"this account through the same stack take {pam['auth_ms']:.1f} ms of CPU, of which "
          f"pam_unix calls crypt_r(3) on the account's {hk} hash **{pam['crypt_calls']} "
          f"times** per login, {pam['crypt_ms']:.1f} ms each (its 16 MiB scratch memory "
          "faulted in anew each time). Linux-PAM's `x_strdup(crypt_r(...))` evaluates its "
          "argument twice (a macro), so the hash is computed twice per login "
          f"(bench/README.md). The column \"net of the hashes\" takes those "
          f"{hashes_ms:.1f} ms out of the server's CPU: what the server itself costs.\n")
    w(f"| | sessions/s, 1 client | server CPU ms/session | net of the hashes | client CPU "
      f"ms/session | sessions/s, {conc} clients | server CPU ms/session | client CPU ms/session "
      "| failed |")
    w("|---|---|---|---|---|---|---|---|---|")
    best = {}
    for c in (1, conc):
        rates = [sstat(n, c, "rate") for n in ftp_names]
        cpus = [sstat(n, c, "server") for n in ftp_names]
        best[c] = (max(x for x in rates if x), min(x for x in cpus if x))
    for n in ftp_names:
        cells = []
        for c in (1, conc):
            r, s, cl = sstat(n, c, "rate"), sstat(n, c, "server"), sstat(n, c, "client")
            cells += [f"{r:.1f} ({r / best[c][0]:.2f})", f"{s:.1f} ({s / best[c][1]:.2f})"]
            if c == 1:
                nets = [sstat(p, 1, "server") - hashes_ms for p in ftp_names]
                own = s - hashes_ms
                cells.append(f"{own:.1f} ({own / min(nets):.2f})" if min(nets) > 0 else
                             f"{own:.1f}")
            cells.append(f"{cl:.1f}")
        cells.append(str(sstat(n, 1, "fail") + sstat(n, conc, "fail")))
        name = f"**{labels[n]}**" if n == "ftpsd" else labels[n]
        w(f"| {name} | " + " | ".join(cells) + " |")
    w("")
    fl = raw["memory"].get(FLOOR, {}).get("cpu_ms")
    if fl:
        w(f"The floor (table 5's, measured there): a process started per connection that loads "
          f"OpenSSL, its certificate and key, completes one TLS handshake and exits costs "
          f"{fl:.1f} ms of server CPU. With PAM's hashes, {fl + hashes_ms:.1f} ms is the least "
          f"a session can cost any server started per connection with OpenSSL 3 and this PAM "
          f"stack, that is at most {1000 / (fl + hashes_ms):.1f} sessions/s on one core.\n")

    steps = [("greeting", ["greeting"]), ("AUTH TLS + handshake", ["auth_tls", "tls_handshake"]),
             ("USER", ["user"]), ("PASS", ["pass"]), ("PBSZ, PROT", ["pbsz_prot"]),
             ("EPSV", ["epsv"]), ("LIST to 150", ["list_150"]), ("data TLS", ["data_tls"]),
             ("listing + 226", ["data", "reply_226"]), ("QUIT", ["quit"])]
    w("### 4b. Where a session's time goes (client's view, ms, median over the runs)\n")
    w("| | " + " | ".join(t for t, _ in steps) + " |")
    w("|---|" + "---|" * len(steps))
    for c in (1, conc):
        for n in ftp_names:
            runs = [r for r in sess.get(f"{n} {c}") or [] if r.get("steps_ms")]
            if not runs:
                continue
            cells = [f"{med([sum(r['steps_ms'].get(k, 0) for k in keys) for r in runs]):.1f}"
                     for _, keys in steps]
            w(f"| {labels[n]}, {c} client{'s' if c > 1 else ''} | " + " | ".join(cells) + " |")
    w("")
    w("greeting: from the TCP connection to the 220 (the server's start-up: exec, "
      "configuration, TLS context). PASS: PAM (the password hash), the PAM session, the "
      "server's per-user set-up.\n")

    mem = raw["memory"]
    w(f"## 5. Memory per idle logged-in session ({meta['idle']} sessions open, PROT P set)\n")
    w("Sum over every process of the server's cgroup of /proc/PID/smaps_rollup, divided by the "
      "number of sessions. USS: private pages only. In brackets: ratio to the lowest.\n")
    w("| | RSS KiB | PSS KiB | USS KiB | processes per session |")
    w("|---|---|---|---|---|")
    kinds = ("rss_kib", "pss_kib", "uss_kib")
    lo = {k: min(mem[n][k] for n in ftp_names) for k in kinds}

    def mem_row(name, m):
        w(f"| {name} | " + " | ".join(f"{m[k]:,.0f} ({m[k] / lo[k]:.2f})" for k in kinds)
          + f" | {m['procs_per_session']:.2f} |")
    for n in ftp_names:
        mem_row(f"**{labels[n]}**" if n == "ftpsd" else labels[n], mem[n])
    fl = mem.get(FLOOR)
    if fl:
        mem_row("floor: tlspump idle, one process per connection", fl)
    w("")
    if fl:
        w("The floor: tlspump's inetd mode, started per connection as the FTP servers are: one "
          "process that loaded OpenSSL, its certificate and key, completed one TLS handshake and "
          "waits for the next byte (record buffers released), with nothing of FTP, PAM or "
          "privilege separation. Its pages are libcrypto's relocated data and OpenSSL's "
          "algorithm tables, built anew by every process that is exec'd: no server started per "
          "connection with OpenSSL 3 holds an idle TLS session in less.\n")
    where = mem.get("ftpsd", {}).get("where")
    if where:
        classes = [c for c, _ in MAP_CLASSES] + ["other libraries", "anonymous",
                                                 "program and other"]
        roles = [r for r in ("monitor", "front", "user") if r in where]
        w("### 5b. Where ftpsd's memory per session goes (PSS KiB per session)\n")
        w("By process (monitor: root, PAM; front: TLS and the control connection; user process) "
          "and by mapping, from /proc/PID/smaps. A page shared by the processes of one session "
          "(libcrypto's relocated data, written once by the loader before the monitor forks) "
          "is split between them and so counts once per session; pages shared with other "
          "sessions (library code) count a fraction.\n")
        w("| | " + " | ".join(roles) + " | session |")
        w("|---|" + "---|" * (len(roles) + 1))
        for c in classes:
            vals = [where[r].get(c, 0) for r in roles]
            w(f"| {c} | " + " | ".join(f"{v:,.0f}" for v in vals) + f" | {sum(vals):,.0f} |")
        tots = [sum(where[r].values()) for r in roles]
        w("| **all** | " + " | ".join(f"{v:,.0f}" for v in tots) + f" | {sum(tots):,.0f} |")
        w("")
    others = [r["other_cores"] for runs in xfer.values() for r in runs]
    steal = [r["steal_cores"] for runs in xfer.values() for r in runs]
    w("## Noise\n")
    w(f"CPU used by other processes on the machine during the transfers: median "
      f"{med(others):.2f}, max {max(others):.2f} cores (of {meta['cores']}); hypervisor steal "
      f"median {med(steal):.2f} cores. Raw data: bench/.work/results.json.\n")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--sizes", action="store_true")
    ap.add_argument("--report", help="re-render results.md from a results.json")
    a = ap.parse_args()
    if a.report:
        raw = json.load(open(a.report))
        text = report(raw)
        with open(os.path.join(BENCH, "results.md"), "w") as fh:
            fh.write(text)
        print(text)
        return
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (it creates an account, PAM services, cgroups "
                         "and a tmpfs, all removed at the end)")
    cfg = Config(os.environ.get("BENCH_QUICK", "") not in ("", "0", "no"))
    # Interrupted runs clean up too: SIGINT may be ignored when started in the background.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    try:
        if a.serve:
            serve(cfg)
        elif a.profile:
            profile(cfg)
        elif a.sizes:
            sizes(cfg)
        else:
            run_all(cfg)
    finally:
        UNDO.run()


# --- profile: where the servers' time goes ---------------------------------------------------

BYTE_CALLS = {"read", "write", "readv", "writev", "pread64", "pwrite64", "sendfile", "splice",
              "sendto", "recvfrom", "sendmsg", "recvmsg", "copy_file_range"}
COMM = {"ftpsd": "ftpsd", "vsftpd": "vsftpd", "proftpd": "proftpd", "pureftpd": "pure-ftpd"}


def strace_parse(path):
    """{pid: {call: [count, bytes, [sizes]]}} from an `strace -f -o` file."""
    per = {}
    line_re = re.compile(r"^(\d+)\s+(.*)$")
    for line in open(path, errors="replace"):
        m = line_re.match(line)
        if not m:
            continue
        pid, rest = int(m.group(1)), m.group(2)
        if rest.endswith("<unfinished ...>"):
            continue  # counted when it resumes
        r = re.match(r"<\.\.\. (\w+) resumed>", rest)
        name = r.group(1) if r else rest.split("(", 1)[0]
        if not re.fullmatch(r"\w+", name) or " = " not in rest:
            continue
        try:
            val = int(rest.rsplit(" = ", 1)[1].split()[0])
        except ValueError:
            continue
        d = per.setdefault(pid, {}).setdefault(name, [0, 0, []])
        d[0] += 1
        if name in BYTE_CALLS and val > 0:
            d[1] += val
            d[2].append(val)
    return per


def strace_table(per, size):
    """The process that moved the most bytes: its calls, with counts and sizes."""
    if not per:
        return "  (no trace)\n", {}
    pid = max(per, key=lambda p: sum(v[1] for v in per[p].values()))
    rows = []
    for name, (count, nbytes, sizes) in sorted(per[pid].items(), key=lambda kv: -kv[1][0]):
        if nbytes:
            common = statistics.mode(sizes)
            rows.append(f"    {name:10s} {count:8d} calls  {nbytes / MiB:9.1f} MiB  median "
                        f"{statistics.median(sizes) / 1024:7.1f} KiB  most common "
                        f"{common / 1024:.1f} KiB  ({count / (size / MiB):.1f} per MiB)")
        else:
            rows.append(f"    {name:10s} {count:8d} calls")
    return f"  busiest process {pid}:\n" + "\n".join(rows) + "\n", per[pid]


PERF_HZ = 2999
MMAP_RE = re.compile(r"PERF_RECORD_MMAP2? (\d+)/\d+: \[0x([0-9a-f]+)\(0x([0-9a-f]+)\) @ "
                     r"0x([0-9a-f]+) .*\]: \S+ (/\S+)")
FORK_RE = re.compile(r"PERF_RECORD_FORK\((\d+):\d+\):\((\d+):\d+\)")
EXEC_RE = re.compile(r"PERF_RECORD_COMM exec: .*:(\d+)/\d+")
SAMPLE_RE = re.compile(r"^\s*(.+?)\s+(\d+)/\d+\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def perf_samples(data):
    """[(comm, pid, dso, sym, offset in the DSO file)] from perf script; the offsets come from
    the mmap events (inherited over fork), for code without symbols (libcrypto's assembly)."""
    r = subprocess.run(["perf", "script", "-i", data, "--show-mmap-events",
                        "--show-task-events", "-F", "comm,pid,tid,ip,sym,dso"],
                       capture_output=True, text=True, errors="replace")
    maps, out = {}, []
    for line in r.stdout.splitlines():
        if "PERF_RECORD_" in line:
            m = MMAP_RE.search(line)
            if m:
                pid, start, length, pgoff, path = m.groups()
                maps.setdefault(int(pid), []).append(
                    (int(start, 16), int(start, 16) + int(length, 16), int(pgoff, 16), path))
                continue
            m = FORK_RE.search(line)
            if m:
                maps[int(m.group(1))] = list(maps.get(int(m.group(2)), []))
                continue
            m = EXEC_RE.search(line)
            if m:
                maps[int(m.group(1))] = []
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            continue
        comm, pid, ip, sym, dso = m.groups()
        pid, ip = int(pid), int(ip, 16)
        off = None
        for start, end, pgoff, path in maps.get(pid, ()):
            if start <= ip < end and os.path.basename(path) == os.path.basename(dso):
                off = ip - start + pgoff
                break
        out.append((comm.strip(), pid, os.path.basename(dso), sym, off))
    return out


def aes_offsets(lib, offsets):
    """The sampled offsets of lib that lie in AES-NI/VAES or carry-less multiply (GHASH) code,
    found by disassembling around them (OpenSSL's GCM assembly has no symbols)."""
    offsets = sorted(o for o in offsets if o is not None)
    if not offsets or not shutil.which("objdump"):
        return set()
    r = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={offsets[0] - 64}",
                        f"--stop-address={offsets[-1] + 64}", lib], capture_output=True, text=True)
    insns = []
    for line in r.stdout.splitlines():
        m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)", line)
        if m:
            insns.append((int(m.group(1), 16), m.group(2)))
    addrs = [a for a, _ in insns]
    hits = set()
    import bisect
    for o in set(offsets):
        i = bisect.bisect_right(addrs, o)
        window = insns[max(0, i - 12):i + 12]
        if any(re.match(r"v?(aes|pclmul)", mn) for _, mn in window):
            hits.add(o)
    return hits


KERNEL_COPY = re.compile(r"copy_(to|from)_iter|copy_folio|copy_page_(to|from)|copy_user|"
                         r"_copy_|memcpy|memmove|memset|clear_page|clear_user|rep_mov")
KERNEL_NET = re.compile(r"tcp|inet|^ip_|ipv4|skb|sock|^sk_|net_|napi|loopback|netif|dev_queue|"
                        r"__dev_|dst_|csum|nf_|splice|pipe")
KERNEL_MM = re.compile(r"filemap|shmem|folio|page|^mm_|_mm_|lru|memcg|alloc|free|vma|pte|pmd|"
                       r"fault|tlb|xas_|xa_|ext4|iomap|writeback|rmap|zone|madvise|mmap|brk|"
                       r"vm_|mas_|charge")
CATEGORIES = ["AES-GCM (libcrypto asm)", "libcrypto other", "libssl", "libc memcpy/memmove",
              "libc other", "password hash (libcrypt)", "loader (ld.so)", "server code",
              "kernel copies", "kernel TCP/net", "kernel mm/page cache", "kernel other"]


def categorize(dso, sym, off, aes, libcrypto_name):
    if dso == "[kernel.kallsyms]":
        if KERNEL_COPY.search(sym):
            return "kernel copies"
        if KERNEL_NET.search(sym):
            return "kernel TCP/net"
        if KERNEL_MM.search(sym):
            return "kernel mm/page cache"
        return "kernel other"
    if dso == libcrypto_name:
        return "AES-GCM (libcrypto asm)" if off in aes else "libcrypto other"
    if dso.startswith("libssl"):
        return "libssl"
    if dso.startswith("libc.so") or dso.startswith("libc-"):
        return "libc memcpy/memmove" if re.search(r"mem(cpy|move|set)", sym) else "libc other"
    if dso.startswith("libcrypt.so"):
        return "password hash (libcrypt)"
    if dso.startswith("ld-linux"):
        return "loader (ld.so)"
    return "server code"


def profiled(tag, outdir, fn, comm):
    """Runs fn() under a system-wide perf record (cpu-clock) and sorts the samples of the
    processes named comm: CPU per process, share per category (crypto, copies, TCP, ...) for
    the whole session and for its busiest process, and the busiest process's top symbols."""
    data = os.path.join(outdir, tag + ".perf.data")
    rec = subprocess.Popen(["perf", "record", "-a", "-F", str(PERF_HZ), "-e", "cpu-clock", "-o",
                            data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        fn()
    finally:
        rec.send_signal(signal.SIGINT)
        rec.wait()
    samples = [x for x in perf_samples(data) if x[0] == comm]
    if not samples:
        return {"tag": tag, "ms": 0, "text": f"== {tag}: no samples of {comm}\n"}
    libcrypto = "libcrypto.so.3"
    lib_path = next((p for p in ("/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
                                 "/lib/x86_64-linux-gnu/libcrypto.so.3") if os.path.exists(p)),
                    None)
    aes = aes_offsets(lib_path, [o for _, _, d, _, o in samples if d == libcrypto]) \
        if lib_path else set()
    per_pid = {}
    for _, pid, _, _, _ in samples:
        per_pid[pid] = per_pid.get(pid, 0) + 1
    busiest = max(per_pid, key=per_pid.get)
    cats_all, cats_busy, syms = {}, {}, {}
    for _, pid, dso, sym, off in samples:
        c = categorize(dso, sym, off, aes, libcrypto)
        cats_all[c] = cats_all.get(c, 0) + 1
        if pid == busiest:
            cats_busy[c] = cats_busy.get(c, 0) + 1
            name = f"{sym} ({dso})" if not sym.startswith("[unknown]") else \
                f"{c}: {dso}+0x{off or 0:x}"
            if c == "AES-GCM (libcrypto asm)":
                name = "AES-GCM assembly (libcrypto, no symbols)"
            syms[name] = syms.get(name, 0) + 1
    n, nb = len(samples), per_pid[busiest]
    ms = 1000 * n / PERF_HZ
    lines = [f"== {tag}: {n} samples of {comm} = {ms:.0f} ms CPU in {len(per_pid)} processes; "
             f"the busiest ({busiest}) has {100 * nb / n:.0f}% =="]
    lines.append("   category                      session  busiest process")
    for c in CATEGORIES:
        if c in cats_all:
            lines.append(f"   {c:28s} {100 * cats_all[c] / n:6.1f}%  "
                         f"{100 * cats_busy.get(c, 0) / nb:6.1f}%")
    lines.append("   top symbols of the busiest process:")
    for name, k in sorted(syms.items(), key=lambda kv: -kv[1])[:15]:
        lines.append(f"     {100 * k / nb:5.1f}%  {name}")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(outdir, tag + ".perf.txt"), "w") as fh:
        fh.write(text)
    return {"tag": tag, "ms": ms, "all": {c: v / n for c, v in cats_all.items()},
            "busy": {c: v / nb for c, v in cats_busy.items()}, "busy_share": nb / n,
            "text": text}


def traced(tag, outdir, listener, fn, calls=None):
    """Runs fn() with strace following every process the listener starts."""
    path = os.path.join(outdir, tag + ".strace")
    argv = ["strace", "-f", "-qq", "-e", "signal=none", "-o", path]
    if calls:
        argv += ["-e", "trace=" + calls]
    st = subprocess.Popen(argv + ["-p", str(listener.proc.pid)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        fn()
        listener.wait_quiet()
    finally:
        st.send_signal(signal.SIGINT)
        st.wait()
    return path


def profile_tables(profiles, servers, cfg, n_sessions):
    """Side by side: where each server's CPU goes, per test (shares of the session's samples)."""
    out = ["# Where the CPU goes (perf, share of each server's samples in the session)\n"]
    for op, prot in TESTS + [("sessions", "")]:
        title = f"{n_sessions} sequential sessions" if op == "sessions" else \
            f"{op.upper()} PROT {prot}, {cfg.size // MiB} MiB"
        out.append(f"## {title}\n")
        out.append("| | CPU ms | " + " | ".join(CATEGORIES) + " |")
        out.append("|---|---|" + "---|" * len(CATEGORIES))
        for s in servers:
            p = profiles.get((s.name, op, prot))
            if not p or not p["ms"]:
                continue
            per = p["ms"] / (n_sessions if op == "sessions" else 1)
            cells = [f"{100 * p['all'].get(c, 0):.0f}%" for c in CATEGORIES]
            out.append(f"| {s.label} | {per:.1f}{'/session' if op == 'sessions' else ''} | "
                       + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def profile(cfg):
    """make bench-profile: perf and strace on each server's data path and session set-up, with
    the summaries on stdout and everything in bench/.work/profile/."""
    if "BENCH_SIZE_MIB" not in os.environ:
        cfg.size = 256 * MiB
    outdir = os.path.join(WORK, "profile")
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    have_perf = shutil.which("perf") is not None
    env = Env(cfg)
    servers = [cls(env) for cls in SERVERS]
    report_lines = [f"# Profile of {ftpsd_build()}, {cfg.size // MiB} MiB file\n"]
    out = report_lines.append
    profiles = {}
    for s in servers:  # warm-up
        run_client([os.path.join(BIN, "ftpsload"), "sessions", HOST, s.strict.port, USER, 2, 1],
                   env=ftpsload_env(env))
    for op, prot in TESTS:
        for s in servers:
            L = s.listener(prot)
            tag = f"{s.name}-{op}-{prot}"

            def once():
                r = run_client(curl_xfer_argv(env, L, op, prot))
                if r.rc != 0:
                    raise RuntimeError(f"{tag}: {r.err[-800:]}")
                remove_upload()

            path = traced(tag, outdir, L, once, ",".join(sorted(BYTE_CALLS)) + ",poll,ppoll")
            text, _ = strace_table(strace_parse(path), cfg.size)
            out(f"## {op.upper()} PROT {prot}, {s.label}: system calls (strace)\n{text}")
            if have_perf:
                prof = profiled(tag, outdir, once, COMM[s.name])
                profiles[(s.name, op, prot)] = prof
                out(prof["text"])
            print("\n".join(report_lines[-2:]) if have_perf else report_lines[-1], flush=True)

    n = 30
    for s in servers:
        tag = f"{s.name}-sessions"

        def many(count=n, server=s):
            r = run_client([os.path.join(BIN, "ftpsload"), "sessions", HOST, server.strict.port,
                            USER, count, 1], env=ftpsload_env(env))
            if r.rc != 0:
                raise RuntimeError(f"{tag}: {r.err[-800:]}")

        path = traced(tag, outdir, s.strict, lambda: many(5))
        per = strace_parse(path)
        per.pop(s.strict.proc.pid, None)  # the listener
        calls = {}
        for d in per.values():
            for name, v in d.items():
                calls[name] = calls.get(name, 0) + v[0]
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:25]
        out(f"## Sessions, {s.label}: system calls per session (strace of 5 sessions), "
            f"{len(per) / 5:.1f} processes per session\n" +
            "\n".join(f"    {k:16s} {v / 5:8.1f}" for k, v in top) + "\n")
        if have_perf:
            prof = profiled(tag, outdir, many, COMM[s.name])
            profiles[(s.name, "sessions", "")] = prof
            out(prof["text"])
        print("\n".join(report_lines[-2:]) if have_perf else report_lines[-1], flush=True)
    if profiles:
        out(profile_tables(profiles, servers, cfg, n))
        print(report_lines[-1])
    with open(os.path.join(outdir, "summary.md"), "w") as fh:
        fh.write("\n".join(report_lines))
    log(f"profile written to {outdir}/summary.md (perf data and strace logs beside it)")


# --- sizes: what write size and buffering the PROT P data path should use -------------------

# (label, tlspump server environment, PROT); the row with "ftpsd" in it is each PROT's reference.
SIZE_VARIANTS = [
    ("16 KiB blocks, a write(2) per 16 KiB record",
     {"TLSPUMP_BUF": "16384", "TLSPUMP_WBUF": "0"}, "P"),
    ("256 KiB blocks, a write(2) per 16 KiB record", {"TLSPUMP_WBUF": "0"}, "P"),
    ("16 KiB blocks, 16 KiB buffering BIO", {"TLSPUMP_BUF": "16384", "TLSPUMP_WBUF": "16384"},
     "P"),
    ("64 KiB blocks and buffering BIO", {"TLSPUMP_BUF": "65536", "TLSPUMP_WBUF": "65536"}, "P"),
    ("256 KiB blocks and buffering BIO", {"TLSPUMP_WBUF": "262144"}, "P"),
    ("256 KiB blocks, 1 MiB buffering BIO, corked (ftpsd's worker)", {}, "P"),
    ("256 KiB blocks, 4 MiB buffering BIO", {"TLSPUMP_WBUF": "4194304"}, "P"),
    ("1 MiB blocks and buffering BIO", {"TLSPUMP_BUF": "1048576"}, "P"),
    ("256 KiB blocks sent from mmap(2) of the file", {"TLSPUMP_MMAP": "1"}, "P"),
    ("sending without TCP_CORK", {"TLSPUMP_CORK": "0"}, "P"),
    ("PROT C: sendfile, splice (ftpsd's worker)", {}, "C"),
    ("PROT C: sendfile corked", {"TLSPUMP_CORK": "1"}, "C"),
]
# Variants that only change how the server sends: not run for STOR, where it receives.
SEND_ONLY = ("TLSPUMP_MMAP", "TLSPUMP_CORK", "TLSPUMP_WBUF")


def sizes(cfg):
    """tlspump's server (the same OpenSSL calls as ftpsd's worker) with each block size and
    write buffering, against its own client (fixed at ftpsd's sizes), server and client pinned to
    separate cores: MiB/s and server CPU s/GiB, median of BENCH_XFER_REPS runs."""
    env = Env(cfg)
    rows = []
    listeners = []
    pin_transfers(listeners, True)
    for op in ("retr", "stor"):
        todo = [v for v in SIZE_VARIANTS
                if not (op == "stor" and v[1] and all(k in SEND_ONLY for k in v[1]))]
        runs = {label: [] for label, _, _ in todo}
        # Round-robin, so that the machine's drift over minutes spreads over every variant
        # instead of favouring the ones measured in a fast stretch.
        for rep in range(cfg.xfer_reps):
            for label, senv, prot in rotate(todo, rep):
                runs[label].append(xfer_pump(env, op, prot, client="pair",
                                             server_env=senv.items()))
        for label, _, prot in todo:
            mibs = med([m["bytes"] / m["seconds"] / MiB for m in runs[label]])
            cpu = med([m["server_cpu"] / (m["bytes"] / GiB) for m in runs[label]])
            ccpu = med([m["client_cpu"] / (m["bytes"] / GiB) for m in runs[label]])
            rows.append((op, label, mibs, cpu, prot, ccpu))
            log(f"{op} {label}: {mibs:.0f} MiB/s, server {cpu:.3f} s/GiB, client {ccpu:.3f}")
    out = ["# PROT P data path: block size and write buffering\n",
           f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: `python3 bench/bench.py --sizes`, "
           f"{cfg.size // MiB} MiB file on tmpfs, {cfg.xfer_reps} runs each (median; the "
           "variants take turns), "
           f"{SUITE13}, tlspump's server (the OpenSSL calls of ftpsd's data worker: file "
           "read(2) into a block, SSL_write of the block, read-ahead and SSL_read into a block "
           "then one file write(2)) against its own client (always ftpsd's sizes)" +
           (", server and client on separate cores" if PIN["server"] else "") +
           ". RETR: the server sends; STOR: the server receives. In brackets: ratio to ftpsd's "
           "choice (for the PROT C rows, ftpsd's PROT C path). TCP_CORK: the socket corked "
           "while the server sends, so that only full segments leave until the end. Client "
           "CPU is shown because on loopback the receiving side's TCP work is done by "
           "whichever process runs when the packets arrive: a change can move CPU between "
           "server and client without saving any.\n",
           "| | RETR MiB/s | RETR server CPU s/GiB | RETR client CPU s/GiB | STOR MiB/s | "
           "STOR server CPU s/GiB | STOR client CPU s/GiB |",
           "|---|---|---|---|---|---|---|"]
    ref = {(r[0], r[4]): r for r in rows if "ftpsd" in r[1]}
    for label, _, prot in SIZE_VARIANTS:
        cells = []
        for op in ("retr", "stor"):
            r = next((x for x in rows if x[0] == op and x[1] == label), None)
            if not r:
                cells += ["–", "–", "–"]
                continue
            f = ref[(op, prot)]
            cells += [f"{r[2]:,.0f} ({r[2] / f[2]:.2f})", f"{r[3]:.3f} ({r[3] / f[3]:.2f})",
                      f"{r[5]:.3f} ({r[5] / f[5]:.2f})"]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    text = "\n".join(out) + "\n"
    with open(os.path.join(BENCH, "sizes.md"), "w") as fh:
        fh.write(text)
    print(text)


def serve(cfg):
    env = Env(cfg)
    servers = [cls(env) for cls in SERVERS]
    sshd = Sshd(env)
    print(f"user {USER} password {env.password}; cert {env.cert}")
    for s in servers:
        print(f"{s.name}: strict {s.strict.port}, relaxed (PROT C) {s.relaxed.port}")
    print(f"sshd: {sshd.port} (key {env.client_key})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
