"""Virtual users (guest_user, ftpsd.conf(5)): names a PAM module authenticates that have no
passwd entry run as the guest account, each in root_dir with %u expanded to its own name. Here
the fixture's pam_matrix database holds vu1 and vu2, which nss_wrapper's passwd lacks, and the
passwd given to the server adds the guest account ftpvirt."""
import ftplib
import io
import os
import pathlib
import re
import secrets
import ssl

import pytest

from ftpsd_fixture import LIBDIR, PAM_MATRIX, USERS, ReusingFTP_TLS, check_config
from reliability import SyslogMark

GUEST = 60300
PASSWORDS = {"vu1": "vu1-secret", "vu2": "vu2-secret", "alice": USERS["alice"][1]}


class Virtual:
    """A passwd and group with the guest account (ftpvirt, in group virtgrp too), a tree with
    each user's root in it, and a pam_matrix service that knows the virtual users."""

    def __init__(self, env, auth_lines=()):
        self.env = env
        self.dir = env.path("virt-" + secrets.token_hex(3))
        os.mkdir(self.dir)
        self.passwd = os.path.join(self.dir, "passwd")
        self.group = os.path.join(self.dir, "group")
        with open(env.passwd) as fh, open(self.passwd, "w") as out:
            out.write(fh.read() + f"ftpvirt:x:{GUEST}:{GUEST}:virtual:/nonexistent:/bin/false\n")
        with open(env.group) as fh, open(self.group, "w") as out:
            out.write(fh.read() + f"ftpvirt:x:{GUEST}:\nvirtgrp:x:{GUEST + 1}:ftpvirt\n")
        self.root = os.path.join(self.dir, "root")
        os.mkdir(self.root)
        for name, uid in (("vu1", GUEST), ("vu2", GUEST), ("alice", USERS["alice"][0])):
            os.mkdir(self.home(name))
            os.chown(self.home(name), uid, uid)
        self.service = env.pam_service(
            "ftpsd-virt-", list(auth_lines) + [f"{kind} required {PAM_MATRIX} passdb={{passdb}}"
                                               for kind in ("auth", "account", "session")],
            PASSWORDS)
        self.xferlog = os.path.join(self.dir, "xferlog")

    def home(self, name):
        return os.path.join(self.root, name)

    def server(self, make_server, prefix=(), **conf):
        conf.setdefault("guest_user", "ftpvirt")
        conf.setdefault("root_dir", self.root + "/%u")
        conf.setdefault("pam_service", self.service)
        return make_server(xferlog_file=self.xferlog,
                           prefix=("env", f"NSS_WRAPPER_PASSWD={self.passwd}",
                                   f"NSS_WRAPPER_GROUP={self.group}") + tuple(prefix), **conf)


@pytest.fixture
def virt(env):
    return Virtual(env)


def login(s, user):
    ctx = ssl.create_default_context(cafile=s.env.cert)
    ctx.check_hostname = False
    f = ReusingFTP_TLS(context=ctx, timeout=20)
    f.connect(s.host, s.port)
    f.login(user, PASSWORDS[user])
    f.prot_p()
    return f


def refused(s, user):
    """The reply to the password of user (who must not get in)."""
    r = s.tls_raw()
    assert r.cmd(f"USER {user}")[0] == 331
    reply = r.cmd(f"PASS {PASSWORDS[user]}")
    r.close()
    return reply


def test_virtual_user_runs_as_the_guest_in_its_own_root(make_server, virt, syslog):
    """vu1 gets 230 and its upload lands in root/vu1 owned by the guest account; vu2, the same
    account, sees none of it and cannot reach it; alice, a real account, stays herself. The
    login line names vu1 and the guest, the other lines and the transfer log (mode g) vu1."""
    s = virt.server(make_server)
    mark = SyslogMark(syslog)
    f = login(s, "vu1")
    assert f.pwd() == "/"
    f.storbinary("STOR v1.txt", io.BytesIO(b"one"))
    f.quit()
    st = os.stat(os.path.join(virt.home("vu1"), "v1.txt"))
    assert (st.st_uid, st.st_gid) == (GUEST, GUEST)
    f = login(s, "vu2")
    assert f.nlst() == []
    for path in ("../vu1/v1.txt", "/../vu1/v1.txt"):
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            f.retrbinary(f"RETR {path}", lambda b: None)
    f.quit()
    f = login(s, "alice")
    f.storbinary("STOR a.txt", io.BytesIO(b"a"))
    f.quit()
    assert os.stat(os.path.join(virt.home("alice"), "a.txt")).st_uid == USERS["alice"][0]
    with open(virt.xferlog) as fh:
        lines = fh.read().splitlines()
    assert re.search(r"/root/vu1/v1\.txt b _ i g vu1 ftp 0 \* c$", lines[0]), lines
    assert re.search(r"/root/alice/a\.txt b _ i r alice ftp 0 \* c$", lines[-1]), lines
    text = mark.text(wait_for=re.compile(r"user=vu1: .*STOR"))
    if text is not None:
        assert "login ok user=vu1 method=password guest=ftpvirt" in text, text
        assert re.search(r"user=vu1: .*STOR", text), text
        assert "login ok user=alice method=password\n" in text, text
        assert "user=ftpvirt" not in text, text


def test_guest_user_is_what_lets_a_name_without_passwd_entry_in(make_server, virt, syslog):
    """The same PAM database without guest_user: vu1 is refused (530) as it always was."""
    mark = SyslogMark(syslog)
    s = virt.server(make_server, guest_user="")
    assert refused(s, "vu1")[0] == 530
    s = virt.server(make_server)
    login(s, "vu1").quit()
    text = mark.text(wait_for="guest=ftpvirt")
    if text is not None:
        assert "login failed user=vu1 method=password: user has no passwd entry" in text, text


def test_account_sections_apply_to_the_virtual_name(make_server, virt):
    """[user vu1] gives vu1 writing and a root of its own, which vu2 (main keys) does not get;
    [group virtgrp], a group of the guest account, sets both users' umask."""
    other = os.path.join(virt.dir, "other")
    os.makedirs(os.path.join(other, "vu1"))
    os.chown(os.path.join(other, "vu1"), GUEST, GUEST)
    s = virt.server(make_server, write_enable="no", sections=(
        f"[user vu1]\nwrite_enable = yes\nroot_dir = {other}/%u\n"
        "[group virtgrp]\numask = 077\n"))
    f = login(s, "vu1")
    f.storbinary("STOR s.txt", io.BytesIO(b"s"))
    f.quit()
    st = os.stat(os.path.join(other, "vu1", "s.txt"))
    assert (st.st_uid, st.st_mode & 0o777) == (GUEST, 0o600)
    f = login(s, "vu2")
    with pytest.raises(ftplib.error_perm, match=r"^550 Permission denied"):
        f.storbinary("STOR s.txt", io.BytesIO(b"s"))
    f.quit()


@pytest.mark.parametrize("conf, reason", [
    ({"guest_user": "root"}, "guest_user 'root' must not be root"),
    ({"guest_user": "nosuchguest"}, "guest_user 'nosuchguest' does not exist"),
    ({"guest_user": "ftpsdtest"}, "guest_user 'ftpsdtest' must not have nopriv_user's uid"),
    ({"root_dir": "ROOT"}, "has no %u: virtual users would share one tree"),
    ({"root_dir": "ROOT/%%u"}, "has no %u: virtual users would share one tree"),
])
def test_unusable_guest_or_shared_root_refuses_virtual_users(make_server, virt, syslog, conf,
                                                             reason):
    """guest_user root, missing, or nopriv_user's account, and a root_dir without %u (%%u is
    a literal), each refuse vu1 as a server-side error (530, logged), and nothing is written in
    the tree; alice, a real account, still logs in."""
    conf = {k: v.replace("ROOT", virt.root) for k, v in conf.items()}
    os.mkdir(os.path.join(virt.root, "%u"))
    s = virt.server(make_server, **conf)
    mark = SyslogMark(syslog)
    assert refused(s, "vu1") == (530, ["530 Login failed (server authentication error)."])
    login(s, "alice").quit()
    text = mark.text(wait_for=reason)
    if text is not None:
        assert re.search(r"login error \(server side\) user=vu1 method=password: .*"
                         + re.escape(reason), text), text
        assert "login ok user=vu1" not in text, text


@pytest.mark.parametrize("mapped", ["..", "../vu1", "."])
def test_virtual_name_that_could_escape_is_refused(make_server, virt, env, mapped):
    """A PAM module that maps the login to a name that would leave root_dir through %u gets
    530, whatever guest_user allows."""
    service = env.pam_service("ftpsd-virtmap-", [
        f"auth required {PAM_MATRIX} passdb={{passdb}}",
        f"auth required {LIBDIR}/pam_wrapper/pam_set_items.so",
        f"account required {LIBDIR}/security/pam_permit.so",
        f"session required {LIBDIR}/security/pam_permit.so"], PASSWORDS)
    s = virt.server(make_server, pam_service=service, prefix=(f"PAM_USER={mapped}",))
    assert refused(s, "vu1")[0] == 530
    # the same service maps nothing without PAM_USER: vu1 itself gets in
    s = virt.server(make_server, pam_service=service)
    login(s, "vu1").quit()


def test_ftpusers_listed_virtual_name_is_refused(make_server, env):
    """pam_listfile on an ftpusers list, as pam.d/ftpsd has it: a virtual name in the list
    gets 530, another gets in."""
    deny = env.path("ftpusers-" + secrets.token_hex(3))
    with open(deny, "w") as fh:
        fh.write("root\nvu2\n")
    virt = Virtual(env, auth_lines=[
        f"auth required {LIBDIR}/security/pam_listfile.so item=user sense=deny file={deny} "
        "onerr=fail"])
    s = virt.server(make_server)
    assert refused(s, "vu2")[0] == 530
    login(s, "vu1").quit()


def test_name_nss_fails_to_look_up_is_not_made_virtual(make_server, virt, env, syslog):
    """NSS fails for vu1 (a directory service that is down; tests/lib/nss_fail_shim.c): vu1
    might be a real account, so it is refused as a server-side error, not run as the guest."""
    s = virt.server(make_server, prefix=("LD_PRELOAD=" + env.shim_preload("nss_fail_shim"),
                                         "NSS_FAIL_USER=vu1"))
    mark = SyslogMark(syslog)
    assert refused(s, "vu1")[0] == 530
    login(s, "vu2").quit()
    want = "cannot tell whether vu1 has a passwd entry (NSS failed)"
    text = mark.text(wait_for=want)
    if text is not None:
        assert want in text, text
    assert os.listdir(virt.home("vu1")) == []


def run_check(env, virt, text):
    conf = os.path.join(virt.dir, "t-" + secrets.token_hex(3) + ".conf")
    return conf, check_config(env, pathlib.Path(conf), text, extra_env={
        "NSS_WRAPPER_PASSWD": virt.passwd, "NSS_WRAPPER_GROUP": virt.group})


@pytest.mark.parametrize("guest, message", [
    ("root", "guest_user 'root' must not be root"),
    ("nosuchguest", "guest_user 'nosuchguest' does not exist"),
    ("ftpsdtest", "guest_user 'ftpsdtest' must not have nopriv_user's uid"),
])
def test_check_refuses_an_unusable_guest_user(env, virt, guest, message):
    """ftpsd -t fails on a guest account no virtual user could run as, on its line."""
    conf, r = run_check(env, virt, f"root_dir = /srv/%u\nguest_user = {guest}\n")
    assert r.returncode != 0, r
    assert f"{conf}:6: {message}" in r.stderr, r.stderr


def test_check_warns_of_a_root_dir_shared_by_virtual_users(env, virt):
    """ftpsd -t: guest_user with a root_dir without %u (main or [host]) is a warning, and a
    [user] section for a virtual user is not "no such user"; the configuration is OK."""
    conf, r = run_check(env, virt, "guest_user = ftpvirt\nroot_dir = /srv\n"
                                   "[host h.example]\nroot_dir = /srv/h/%u\n"
                                   "[host g.example]\nroot_dir = /srv/g\n"
                                   "[user vu1]\nwrite_enable = yes\n")
    assert r.returncode == 0, r
    warnings = [l for l in r.stderr.splitlines() if "%u" in l or "no such" in l]
    assert warnings == [
        f"{conf}:6: warning: root_dir '/srv' has no %u: virtual users' logins (guest_user) would "
        "be refused, unless a [user] or [group] section gives them one with %u",
        f"{conf}:10: warning: [host g.example]: root_dir '/srv/g' has no %u: virtual users' "
        "logins (guest_user) would be refused, unless a [user] or [group] section gives them "
        "one with %u"], r.stderr
    conf, r = run_check(env, virt, "guest_user = ftpvirt\nroot_dir = /srv/%u\n")
    assert r.returncode == 0 and "%u" not in r.stderr, r


def test_login_after_a_virtual_users_rein_is_not_virtual(make_server, virt):
    """REIN after vu1's session, then an anonymous login: the session is ftp's (STAT, the
    front's user), not vu1's again."""
    anon_root = os.path.join(virt.dir, "anon")
    os.mkdir(anon_root)
    s = virt.server(make_server, allow_rein="yes", anonymous="yes", anon_root=anon_root)
    r = s.tls_raw()
    assert r.cmd("USER vu1")[0] == 331
    assert r.cmd(f"PASS {PASSWORDS['vu1']}")[0] == 230
    assert " Logged in as vu1" in r.cmd("STAT")[1]
    assert r.cmd("REIN")[0] == 220
    r.sock = r.sock.unwrap()
    r.starttls(s.env.cert)
    assert r.cmd("USER anonymous")[0] == 331
    assert r.cmd("PASS guest@example.org")[0] == 230
    assert " Logged in as ftp" in r.cmd("STAT")[1]
    r.close()


def test_session_limit_counts_each_virtual_user_by_name(make_server, virt):
    """max_sessions_per_user = 1: vu1's second session is refused, while vu2, who runs as the
    same guest account, still gets in (the count is the virtual name's, not the guest's)."""
    s = virt.server(make_server, max_sessions_per_user=1)
    f1 = login(s, "vu1")
    assert refused(s, "vu1")[1][-1] == ("530 Too many sessions of this account are open; try "
                                        "again later.")
    f2 = login(s, "vu2")
    f2.quit()
    f1.quit()
