"""Rootless mode (issue 6): ftpsd started as an ordinary user serves that user only, confined
by openat2 and Landlock instead of chroot and uid changes."""
import ftplib
import io
import os
import shutil
import ssl

import pytest

from ftpsd_fixture import HOOKS_BINARY, PAM_MATRIX, USERS, ReusingFTP_TLS
from test_processes import children, status

UID = USERS["alice"][0]


@pytest.fixture
def rootless(make_server, env):
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    # What alice may read: her own copy of the key and a PAM database she can open.
    d = env.path("rootless")
    env.cert_copy(d, UID)
    passdb = os.path.join(d, "passdb")
    with open(passdb, "w") as fh:
        fh.write("".join(f"{u}:{pw}:ftpsd-rootless\n" for u, (_, pw) in USERS.items()))
    os.chown(passdb, UID, UID)
    with open(os.path.join(env.pamdir, "ftpsd-rootless"), "w") as fh:
        for kind in ("auth", "account", "session"):
            fh.write(f"{kind} required {PAM_MATRIX} passdb={passdb}\n")
    os.chown(d, UID, UID)

    def make(exec_prefix=(), **conf):
        # The fixture's default is root's: rootless, sessions are counted in alice's.
        conf.setdefault("session_lock_dir", os.path.join(d, "sessions"))
        s = make_server(prefix=["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
                                "--", *exec_prefix],
                        tls_cert_file=os.path.join(d, "server.pem"),
                        tls_key_file=os.path.join(d, "server.key"),
                        pam_service="ftpsd-rootless", **conf)
        os.chmod(s.conf_path, 0o644)
        return s
    return make


def second_login_refused(s):
    """With alice logged in once, a second login of hers gets the session limit's 530."""
    f = s.ftps("alice")
    r = s.tls_raw()
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd(f"PASS {USERS['alice'][1]}")[1][-1] == (
        "530 Too many sessions of this account are open; try again later.")
    r.close()
    f.quit()


def test_rootless_counts_sessions_in_its_own_directory(rootless, env):
    """With session_lock_dir set to one of the running user's, the limit holds rootless too
    (the default, /run/ftpsd, is root's: there the sessions are not counted)."""
    s = rootless(max_sessions_per_user=1)
    second_login_refused(s)
    d = os.path.join(env.path("rootless"), "sessions")
    assert os.stat(d).st_uid == UID
    s2 = rootless(max_sessions_per_user=1, session_lock_dir=None)
    f1, f2 = s2.ftps("alice"), s2.ftps("alice")
    f1.quit()
    f2.quit()


def test_rootless_counts_sessions_with_the_lock_directory_given_by_o(rootless, env):
    """session_lock_dir given by -o (a user unit's ExecStart, say) is set as one in the file
    is: an -o value has no line, and the sessions were not counted when "set" was judged by
    the line."""
    d = os.path.join(env.path("rootless"), "sessions-o")
    s = rootless(max_sessions_per_user=1, session_lock_dir=None,
                 exec_prefix=["sh", "-c", f'exec "$0" -o session_lock_dir={d} "$@"'])
    second_login_refused(s)
    assert os.listdir(d) == ["u_alice.0"]


def test_rootless_serves_its_user(rootless, env):
    s = rootless()
    f = s.ftps_reuse("alice")
    assert f.pwd() == "/"
    f.storbinary("STOR rootless.txt", io.BytesIO(b"no root needed\n"))
    out = io.BytesIO()
    f.retrbinary("RETR rootless.txt", out.write)
    assert out.getvalue() == b"no root needed\n"
    assert os.stat(os.path.join(env.home("alice"), "rootless.txt")).st_uid == UID
    f.cwd("../../..")
    assert f.pwd() == "/"
    with pytest.raises(ftplib.error_perm, match="^550"):
        f.retrbinary("RETR ../../../etc/hostname", io.BytesIO().write)
    # every process of the session is alice, none has a capability
    sa = s.proc.pid
    procs = []
    for mon in children(sa):
        procs.append(mon)
        procs.extend(children(mon))
    assert len(procs) >= 3
    for pid in procs:
        st = status(pid)
        assert st["Uid"].split() == [str(UID)] * 4
        assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
    f.quit()


def test_rootless_refuses_other_users(rootless):
    s = rootless()
    with pytest.raises(ftplib.error_perm, match="^530"):
        s.ftps("bob")


def test_rootless_landlock_confines(rootless, env):
    if not os.path.exists(HOOKS_BINARY):
        pytest.skip("build/ftpsd-testhooks is built by make check")
    s = rootless(binary=HOOKS_BINARY)
    r = s.raw()
    r.reply()
    r.starttls(s.env.cert)
    r.login("alice")
    inside = os.path.join(env.home("alice"), "inside.txt")
    open(inside, "w").write("in")
    os.chown(inside, UID, UID)
    assert r.cmd(f"XTST OPEN {inside}")[0] == 200
    code, lines = r.cmd("XTST OPEN /etc/hostname")
    assert code == 550 and "Permission denied" in lines[0], lines
    r.close()


