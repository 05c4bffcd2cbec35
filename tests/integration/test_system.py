"""System integration (issue 6): the shipped systemd units verify cleanly, and sessions are
served by a real xinetd with the shipped service files, explicit and implicit."""
import io
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from ftpsd_fixture import BINARY, LIBDIR, NOPRIV, USERS, ReusingFTP_TLS, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_units_verify(tmp_path):
    """systemd-analyze verify: syntax, ExecStart, and the Documentation= man pages."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    units = ["ftpsd.socket", "ftpsd@.service", "ftpsd-implicit.socket", "ftpsd-implicit@.service"]
    for u in units:
        text = open(os.path.join(ROOT, "systemd", u)).read().replace("/usr/sbin/ftpsd", BINARY)
        (tmp_path / u).write_text(text)
    for sec, page in (("8", "ftpsd.8"), ("5", "ftpsd.conf.5")):
        d = tmp_path / "man" / f"man{sec}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(ROOT, "man", page), d)
    r = subprocess.run(["systemd-analyze", "verify"] + [str(tmp_path / u) for u in units],
                       capture_output=True, text=True,
                       env={**os.environ, "MANPATH": str(tmp_path / "man")})
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_units_content():
    sock = open(os.path.join(ROOT, "systemd", "ftpsd.socket")).read()
    for line in ("ListenStream=21", "Accept=yes", "MaxConnections=", "MaxConnectionsPerSource="):
        assert line in sock
    implicit = open(os.path.join(ROOT, "systemd", "ftpsd-implicit.socket")).read()
    assert "ListenStream=990" in implicit and "Accept=yes" in implicit
    svc = open(os.path.join(ROOT, "systemd", "ftpsd-implicit@.service")).read()
    assert "-o implicit_tls=yes" in svc
    svc = open(os.path.join(ROOT, "systemd", "ftpsd@.service")).read()
    for line in ("StandardInput=socket", "StandardError=journal", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=", "ProtectSystem=full"):
        assert line in svc
    # every directive left out says why
    assert "# Left out on purpose:" in svc and "ProtectHome" in svc



def unit_sections(text):
    """{section: [(key, value, the comment lines right above it)]} of a unit file."""
    sections, section, comment = {}, None, []
    for line in text.splitlines():
        if line.startswith("#"):
            comment.append(line)
        elif line.startswith("["):
            section, comment = line.strip("[]"), []
            sections[section] = []
        elif "=" in line:
            k, v = line.split("=", 1)
            sections[section].append((k, v, "\n".join(comment)))
            comment = []
        else:
            comment = []
    return sections


@pytest.mark.parametrize("unit", ["ftpsd@.service", "ftpsd-implicit@.service"])
def test_per_connection_units(unit):
    """The per-connection templates: failed instances are collected (CollectMode= belongs to
    [Unit]: in [Service] systemd ignores it with a warning), and the two directives with side
    effects an admin meets say what they are, in the unit and in ftpsd(8)."""
    sections = unit_sections(open(os.path.join(ROOT, "systemd", unit)).read())
    unit_keys = {k: v for k, v, _ in sections["Unit"]}
    assert unit_keys.get("CollectMode") == "inactive-or-failed", sections["Unit"]
    service = {k: (v, c) for k, v, c in sections["Service"]}
    assert "CollectMode" not in service
    value, comment = service["PrivateTmp"]
    assert value == "yes"
    for word in ("/tmp", "/var/tmp", "root_dir", "home", "lost"):
        assert word in comment, (word, comment)
    value, comment = service["RestrictSUIDSGID"]
    assert value == "yes"
    for word in ("SITE CHMOD", "setgid", "2775", "Operation not permitted", "drop-in"):
        assert word in comment, (word, comment)


def test_ftpsd_8_describes_the_units():
    man = open(os.path.join(ROOT, "man", "ftpsd.8")).read()
    section = man[man.index(".SH SYSTEMD UNITS"):]
    section = section[:section.index("\n.SH ", 1)]
    for needle in (".B PrivateTmp=yes", "/var/tmp", ".B root_dir", ".B RestrictSUIDSGID=yes",
                   "SITE CHMOD", "setgid", ".B CollectMode=inactive\\-or\\-failed"):
        assert needle in section, needle

class Xinetd:
    """A real xinetd in the foreground, serving one service built from a shipped file."""

    def __init__(self, env, shipped, conf_overrides=None):
        if not shutil.which("xinetd"):
            pytest.skip("xinetd is not installed")
        self.port = free_port()
        self.env = env
        # A server config like the fixture's, but served by xinetd instead.
        self.conf = env.path(f"xinetd-ftpsd-{self.port}.conf")
        settings = {"tls_cert_file": env.cert, "tls_key_file": env.key,
                    "nopriv_user": NOPRIV[0], "empty_dir": env.empty, "write_enable": "yes",
                    "fail_delay_ms": "200", "pasv_min_port": "40000", "pasv_max_port": "44999"}
        settings.update(conf_overrides or {})
        with open(self.conf, "w") as fh:
            for k, v in settings.items():
                fh.write(f"{k} = {v}\n")
        text = open(os.path.join(ROOT, "xinetd.d", shipped)).read()
        # The shipped service, adapted: enabled, our binary and config, a test port, cwrap env.
        text = text.replace("disable\t\t= yes", "disable\t\t= no")
        text = text.replace("/usr/sbin/ftpsd", BINARY).replace("/etc/ftpsd.conf", self.conf)
        text = re.sub(r"service \S+", f"service ftpsd-test-{self.port}", text)
        wrappers = (f"LD_PRELOAD={LIBDIR}/libpam_wrapper.so:{LIBDIR}/libnss_wrapper.so "
                    f"PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR={env.pamdir} "
                    f"NSS_WRAPPER_PASSWD={env.passwd} NSS_WRAPPER_GROUP={env.group}")
        text = text.replace("{", "{\n\ttype\t\t= UNLISTED\n\tport\t\t= %d\n\tbind\t\t= 127.0.0.1\n"
                            "\tenv\t\t= %s\n" % (self.port, wrappers), 1)
        self.xconf = env.path(f"xinetd-{self.port}.conf")
        with open(self.xconf, "w") as fh:
            fh.write("defaults\n{\n\tinstances = 16\n}\n" + text)
        self.proc = subprocess.Popen(["xinetd", "-dontfork", "-stayalive", "-f", self.xconf,
                                      "-pidfile", env.path(f"xinetd-{self.port}.pid")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self._listening():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("xinetd did not start: " + self.proc.stderr.read().decode())

    def _listening(self):
        port = f"{self.port:04X}"
        with open("/proc/net/tcp") as fh:
            return any(l.split()[1].endswith(":" + port) and l.split()[3] == "0A"
                       for l in fh.readlines()[1:])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


def test_xinetd_explicit(env):
    x = Xinetd(env, "ftpsd")
    try:
        ctx = ssl.create_default_context(cafile=env.cert)
        ctx.check_hostname = False
        f = ReusingFTP_TLS(context=ctx, timeout=20)
        greeting = f.connect("127.0.0.1", x.port)
        assert greeting.startswith("220 ")
        f.login("alice", USERS["alice"][1])
        f.prot_p()
        f.storbinary("STOR via-xinetd.txt", io.BytesIO(b"xinetd\n"))
        out = io.BytesIO()
        f.retrbinary("RETR via-xinetd.txt", out.write)
        assert out.getvalue() == b"xinetd\n"
        f.quit()
    finally:
        x.stop()


def test_xinetd_stderr_never_reaches_the_client(env):
    """xinetd puts the socket on fd 2 too: a configuration error must come out as one 421
    reply, with no stray text on the connection."""
    x = Xinetd(env, "ftpsd", {"bogus_key": "1"})
    try:
        s = socket.create_connection(("127.0.0.1", x.port), timeout=10)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data == b"421 Service not available (server configuration error).\r\n"
    finally:
        x.stop()


def test_xinetd_implicit(env):
    x = Xinetd(env, "ftpsd-implicit")
    try:
        r = subprocess.run(["curl", "-sS", "--cacert", env.cert, "-u",
                            f"alice:{USERS['alice'][1]}", f"ftps://localhost:{x.port}/"],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
    finally:
        x.stop()


def test_pam_file_follows_debian_conventions():
    pam = open(os.path.join(ROOT, "pam.d", "ftpsd")).read()
    for needle in ("pam_listfile.so item=user sense=deny file=/etc/ftpusers", "pam_shells.so",
                   "@include common-auth", "@include common-account", "pam_nologin.so",
                   "@include common-session"):
        assert needle in pam
