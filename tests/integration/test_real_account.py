"""A real throwaway system account logging in through the SHIPPED pam.d/ftpsd (pam_listfile,
pam_shells, common-auth / pam_unix, pam_nologin, common-account, common-session-noninteractive),
without cwrap: real NSS, real PAM, real shadow entries (expiry, forced password change)."""
import io
import os
import pwd
import secrets
import shutil
import ssl
import subprocess
import time

import pytest

from ftpsd_fixture import ROOT, RawClient, ReusingFTP_TLS, Server

SHIPPED_PAM = os.path.join(ROOT, "pam.d", "ftpsd")


def _why_not():
    if os.geteuid() != 0:
        return "needs root: creates a system account and a PAM service"
    for tool in ("useradd", "userdel", "chpasswd", "chage", "usermod"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if not os.path.isdir("/etc/pam.d") or not os.path.exists("/etc/pam.d/common-auth"):
        return "no Debian-style /etc/pam.d/common-* stack for the shipped pam.d/ftpsd"
    try:
        shells = open("/etc/shells").read().split()
    except OSError:
        shells = []
    if "/bin/bash" not in shells:
        return "/bin/bash is not in /etc/shells: pam_shells would refuse every login"
    if os.path.exists("/etc/nologin"):
        return "/etc/nologin exists: pam_nologin refuses every login"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "no 'nobody' user for nopriv_user"
    return None


WHY_NOT = _why_not()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


def sh(*cmd, input=None):
    return subprocess.run(list(cmd), input=input, capture_output=True, text=True, check=True)


class Account:
    def __init__(self):
        self.name = "ftpsdci" + "".join(secrets.choice("0123456789") for _ in range(6))
        self.password = "Pw-" + secrets.token_urlsafe(18)
        sh("useradd", "-m", "-s", "/bin/bash", "-c", "ftpsd test account", self.name)
        self.created = True
        self.set_password()
        self.pw = pwd.getpwnam(self.name)
        self.home = self.pw.pw_dir

    def set_password(self):
        # Also sets the last change to today, undoing `chage -d 0`.
        sh("chpasswd", input=f"{self.name}:{self.password}\n")

    def delete(self):
        subprocess.run(["userdel", "-r", "-f", self.name], capture_output=True)


@pytest.fixture(scope="module")
def account():
    a = Account()
    try:
        yield a
    finally:
        a.delete()
        assert subprocess.run(["id", a.name], capture_output=True).returncode != 0


@pytest.fixture(scope="module")
def pam_service():
    name = "ftpsd-test-" + secrets.token_hex(4)
    path = os.path.join("/etc/pam.d", name)
    assert not os.path.exists(path)
    shutil.copy(SHIPPED_PAM, path)
    os.chmod(path, 0o644)
    try:
        yield name
    finally:
        os.unlink(path)


@pytest.fixture(scope="module")
def real_server(env, account, pam_service):
    s = Server(env, name="real", wrappers=False, pam_service=pam_service, nopriv_user="nobody")
    try:
        yield s
    finally:
        s.stop()


def raw_login(server, user, password):
    r = RawClient(server.host, server.port, timeout=20)
    assert r.reply()[0] == 220
    r.starttls(server.env.cert)
    assert r.cmd(f"USER {user}")[0] == 331
    code, lines = r.cmd(f"PASS {password}")
    return r, code, lines


def client(server):
    ctx = ssl.create_default_context(cafile=server.env.cert)
    ctx.check_hostname = False
    f = ReusingFTP_TLS(context=ctx, timeout=20)
    f.connect(server.host, server.port)
    return f


def test_server_runs_without_cwrap(real_server):
    """The test is only meaningful if the server really uses the system's NSS and PAM."""
    with open(real_server.conf_path) as fh:
        conf = fh.read()
    assert "nopriv_user = nobody" in conf
    with open(real_server.stderr.name) as fh:
        assert "LD_PRELOAD" not in fh.read()


def test_real_login_upload_download(real_server, account):
    f = client(real_server)
    try:
        resp = f.login(account.name, account.password)
        assert resp.startswith("230"), resp
        f.prot_p()
        assert f.pwd() == "/"
        data = os.urandom(70000) + b"\r\n\n"
        f.storbinary("STOR up.bin", io.BytesIO(data))
        st = os.stat(os.path.join(account.home, "up.bin"))
        assert st.st_uid == account.pw.pw_uid and st.st_gid == account.pw.pw_gid
        with open(os.path.join(account.home, "up.bin"), "rb") as fh:
            assert fh.read() == data
        got = io.BytesIO()
        f.retrbinary("RETR up.bin", got.write)
        assert got.getvalue() == data
        assert "up.bin" in f.nlst()
        # Confined to the home directory.
        f.cwd("../../..")
        assert f.pwd() == "/"
        assert set(f.nlst()) == {n for n in os.listdir(account.home) if not n.startswith(".")}
        f.delete("up.bin")
        f.quit()
    finally:
        f.close()
    assert not os.path.exists(os.path.join(account.home, "up.bin"))


def test_real_wrong_password(real_server, account):
    r, code, lines = raw_login(real_server, account.name, account.password + "x")
    assert code == 530, lines
    r.close()


def test_real_unknown_user(real_server, account):
    r, code, lines = raw_login(real_server, account.name + "nosuch", account.password)
    assert code == 530, lines
    r.close()


def test_real_expired_account(real_server, account):
    sh("chage", "-E", "0", account.name)
    try:
        r, code, lines = raw_login(real_server, account.name, account.password)
        assert code == 530, lines
        assert lines[-1] == "530 Account is not allowed to log in now.", lines
        r.close()
    finally:
        sh("chage", "-E", "-1", account.name)
    # And back to normal.
    r, code, lines = raw_login(real_server, account.name, account.password)
    assert code == 230, lines
    r.close()


def test_real_password_must_be_changed(real_server, account):
    sh("chage", "-E", "-1", account.name)
    sh("chage", "-d", "0", account.name)
    try:
        r, code, lines = raw_login(real_server, account.name, account.password)
        assert code == 530, lines
        assert any("expired" in l.lower() or "change" in l.lower() for l in lines), lines
        assert lines[-1] == "530 Password has expired; change it before logging in.", lines
        r.close()
    finally:
        account.set_password()
    r, code, lines = raw_login(real_server, account.name, account.password)
    assert code == 230, lines
    r.close()


def test_real_shell_not_in_etc_shells(real_server, account):
    """pam_shells in the shipped stack: a shell missing from /etc/shells cannot log in."""
    shells = open("/etc/shells").read().split()
    bogus = "/usr/local/bin/ftpsd-no-such-shell"
    assert bogus not in shells
    sh("usermod", "-s", bogus, account.name)
    try:
        r, code, lines = raw_login(real_server, account.name, account.password)
        assert code == 530, lines
        r.close()
    finally:
        sh("usermod", "-s", "/bin/bash", account.name)


def test_real_locked_password(real_server, account):
    sh("usermod", "-L", account.name)
    try:
        r, code, lines = raw_login(real_server, account.name, account.password)
        assert code == 530, lines
        r.close()
    finally:
        sh("usermod", "-U", account.name)
    r, code, lines = raw_login(real_server, account.name, account.password)
    assert code == 230, lines
    r.close()


def test_real_root_refused(real_server):
    """root never logs in, whatever PAM would say."""
    r, code, lines = raw_login(real_server, "root", "certainly-not-the-password")
    assert code == 530, lines
    r.close()


def test_real_empty_password_refused(real_server, account):
    """common-auth has pam_unix "nullok", but ftpsd passes PAM_DISALLOW_NULL_AUTHTOK: an account
    without a password cannot log in, neither with an empty PASS nor with an over-long one
    (which the front replaces by an empty password)."""
    sh("passwd", "-d", account.name)
    try:
        for password in ("", "p" * 2000):
            r = RawClient(real_server.host, real_server.port, timeout=20)
            assert r.reply()[0] == 220
            r.starttls(real_server.env.cert)
            assert r.cmd(f"USER {account.name}")[0] == 331
            code, lines = r.cmd(f"PASS {password}".rstrip())
            assert code == 530, (len(password), lines)
            r.close()
    finally:
        account.set_password()
    r, code, lines = raw_login(real_server, account.name, account.password)
    assert code == 230, lines
    r.close()


def test_user_process_memory_has_no_password(real_server, account):
    """The login request, the monitor's copy and PAM's token are scrubbed before the user
    process is forked from the monitor: a real pam_unix login (the cwrap tests' pam_matrix
    keeps its own plaintext password file in memory)."""
    from test_processes import children, memory_contains, status
    r, code, lines = raw_login(real_server, account.name, account.password)
    try:
        assert code == 230, lines
        users = []
        deadline = time.time() + 5
        while not users and time.time() < deadline:
            users = [k for mon in children(real_server.proc.pid) for k in children(mon)
                     if status(k)["Uid"].split()[0] == str(account.pw.pw_uid)
                     and status(k).get("Seccomp") == "2"]
            time.sleep(0.05)
        assert len(users) == 1, users
        assert not memory_contains(users[0], [account.password.encode()])
    finally:
        r.close()
