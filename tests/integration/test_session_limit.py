"""How many sessions an account may have at once (ftpsd.conf(5) max_sessions_per_user,
anon_max_sessions, session_lock_dir): counted across the per-connection process trees, given
back however a session ends, refused with 530 after the password was checked."""
import ftplib
import os
import re
import signal
import subprocess
import time

import pytest

from ftpsd_fixture import BINARY, USERS, wrapper_env
from reliability import children

BUSY = "530 Too many sessions of this account are open; try again later."


def refused(s, user, password=None):
    """The client and the last line of its reply to the password (pam_matrix says
    "Authentication succeeded" before it)."""
    r = s.tls_raw()
    assert r.cmd(f"USER {user}")[0] == 331
    return r, r.cmd(f"PASS {password or USERS[user][1]}")[1][-1]


def login_ok(s, user, timeout=5):
    """A logged-in client, retried while a closed session's monitor is still ending."""
    deadline = time.time() + timeout
    while True:
        try:
            return s.ftps(user)
        except ftplib.error_perm as e:
            if "530 Too many" not in str(e) or time.time() > deadline:
                raise


def test_limit_refuses_one_more_and_frees_the_slot_at_quit(make_server, log):
    """Two of alice's sessions are open: a third gets 530 (logged as a refusal, not a failed
    login, so fail2ban does not ban for it), bob is not counted with her, and once one of
    hers quits she can log in again."""
    s = make_server(max_sessions_per_user=2)
    a1, a2 = s.ftps("alice"), s.ftps("alice")
    r, reply = refused(s, "alice")
    assert reply == BUSY
    # The session goes on: the client may try again (or log in as someone else) later.
    assert r.cmd("NOOP")[0] == 200
    b = s.ftps("bob")
    assert b.pwd() == "/"
    a1.quit()
    a3 = login_ok(s, "alice")
    assert a3.pwd() == "/"
    text = log.text(wait_for="2 sessions already open (max_sessions_per_user)")
    line = [l for l in text.splitlines() if "login refused user=alice" in l]
    assert line and "2 sessions already open (max_sessions_per_user)" in line[-1], line
    # That session's lines (the log holds the whole run's): no failed login among them.
    sid = re.search(r"\[([0-9a-f]{12})\]", line[-1]).group(1)
    assert not [l for l in text.splitlines() if f"[{sid}]" in l and "login failed" in l]
    for f in (a2, a3, b):
        f.quit()


def test_refusals_count_towards_max_login_failures(make_server):
    """A client cannot make the server check passwords without end by logging in again and
    again while the account is at its limit: each refusal is an attempt."""
    s = make_server(max_sessions_per_user=1, max_login_failures=2)
    a1 = s.ftps("alice")
    r, reply = refused(s, "alice")
    assert reply == BUSY
    assert r.cmd("USER alice")[0] == 331
    code, lines = r.cmd(f"PASS {USERS['alice'][1]}")
    assert code == 421 and "Too many failed logins" in lines[-1], lines
    a1.quit()


def test_wrong_password_is_not_told_the_account_is_busy(make_server):
    """The limit is checked only once the password is right: a guesser learns nothing of how
    many sessions an account has."""
    s = make_server(max_sessions_per_user=1)
    a1 = s.ftps("alice")
    r, reply = refused(s, "alice", password="wrong")
    assert reply == "530 Login incorrect.", reply
    a1.quit()


def test_killed_session_gives_its_slot_back(make_server):
    """A session whose processes are killed (SIGKILL: no clean-up runs) does not keep
    counting: the kernel lets go of its lock."""
    s = make_server(max_sessions_per_user=1)
    a1 = s.ftps("alice")
    mons = children(s.proc.pid)
    assert len(mons) == 1
    _, reply = refused(s, "alice")
    assert reply == BUSY
    os.kill(mons[0], signal.SIGKILL)
    a2 = login_ok(s, "alice")
    assert a2.pwd() == "/"
    a2.quit()
    a1.close()


def test_rein_gives_the_slot_back(make_server):
    """REIN logs the account out of a session that stays connected: it no longer counts."""
    s = make_server(max_sessions_per_user=1, allow_rein="yes")
    r = s.tls_raw(user="alice")
    _, reply = refused(s, "alice")
    assert reply == BUSY
    assert r.cmd("REIN")[0] == 220
    a2 = login_ok(s, "alice")
    a2.quit()
    r.close()


def test_user_and_group_sections_set_the_limit(make_server):
    """[user alice] may have one session, [group shared] (bob) two, carol the main key's none."""
    s = make_server(max_sessions_per_user=0, sections=(
        "[user alice]\nmax_sessions_per_user = 1\n"
        "[group shared]\nmax_sessions_per_user = 2\n"))
    open_ = [s.ftps("alice")]
    assert refused(s, "alice")[1] == BUSY
    open_ += [s.ftps("bob"), s.ftps("bob")]
    assert refused(s, "bob")[1] == BUSY
    open_ += [s.ftps("carol") for _ in range(4)]
    for f in open_:
        f.quit()


def test_anonymous_sessions_are_counted_together(make_server, env):
    """anon_max_sessions bounds all anonymous sessions together (whatever e-mail they give);
    the accounts' limit is apart from it."""
    anon = env.path("anon-limit-root")
    os.makedirs(anon, exist_ok=True)
    s = make_server(anonymous="yes", anon_root=anon, anon_max_sessions=1,
                    max_sessions_per_user=1)
    a1 = s.ftps()
    a1.login("anonymous", "one@example.org")
    r = s.tls_raw()
    assert r.cmd("USER ftp")[0] == 331
    assert r.cmd("PASS two@example.org")[1][-1] == BUSY
    alice = s.ftps("alice")
    a1.quit()
    a2 = s.ftps()
    deadline = time.time() + 5
    while True:
        try:
            a2.login("anonymous", "three@example.org")
            break
        except ftplib.error_perm:
            if time.time() > deadline:
                raise
    a2.quit()
    alice.quit()


def test_unsafe_lock_directory_fails_logins_and_check(make_server, env, log):
    """A lock directory that another user could write (so hold every slot) is not used: the
    login gets the server-error reply, logged as the server's fault, and ftpsd -t reports it.
    Without a limit the directory is not needed."""
    d = env.path(f"unsafe-locks-{os.getpid()}")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o777)
    s = make_server(max_sessions_per_user=4, session_lock_dir=d)
    _, reply = refused(s, "alice")
    assert reply == "530 Login failed (server authentication error).", reply
    text = log.text(wait_for="is writable by others than its owner")
    assert f"session_lock_dir {d} is writable by others than its owner" in text
    t = subprocess.run([BINARY, "-t", "-f", s.conf_path], capture_output=True, text=True,
                       env=wrapper_env(env))
    assert t.returncode == 1, t
    assert f"session_lock_dir {d} is writable by others than its owner" in t.stderr, t.stderr
    s2 = make_server(max_sessions_per_user=0, session_lock_dir=d)
    f = s2.ftps("alice")
    f.quit()
    t = subprocess.run([BINARY, "-t", "-f", s2.conf_path], capture_output=True, text=True,
                       env=wrapper_env(env))
    assert t.returncode == 0, t.stderr


def test_lock_directory_is_made_private(make_server, env):
    """The directory is made at the first counted login, 0700 and root's."""
    d = env.path(f"new-locks-{os.getpid()}")
    s = make_server(max_sessions_per_user=3, session_lock_dir=d)
    f = s.ftps("alice")
    st = os.stat(d)
    assert st.st_uid == 0 and (st.st_mode & 0o777) == 0o700, oct(st.st_mode)
    assert sorted(os.listdir(d)) == ["u_alice.0"]
    f.quit()
