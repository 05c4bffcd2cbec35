"""What PAM's session stage may do to a session: pam_limits' limits (they bind the user's
processes, not the root monitor that opens the session), any amount of messages from a module
(pam_exec, pam_motd), and a root that is not a directory."""
import ftplib
import io
import os
import secrets

import pytest

from ftpsd_fixture import LIBDIR, USERS
from test_processes import session_processes, status

ALICE = USERS["alice"][0]


def pam_service(env, session_lines):
    """A pam_wrapper service: pam_matrix for auth and account, and these session lines."""
    return env.pam_matrix_service("ftpsd-sess-", session_lines)


def limits(pid):
    out = {}
    with open(f"/proc/{pid}/limits") as fh:
        for line in fh.readlines()[1:]:
            name = line[:26].strip()
            out[name] = line[26:].split()[:2]
    return out


def have_cap(bit):
    """Whether processes here can have capability bit (some containers drop CAP_SYS_RESOURCE,
    which raising a limit back needs; the shipped units keep it)."""
    with open("/proc/self/status") as fh:
        bnd = [l for l in fh if l.startswith("CapBnd:")][0].split()[1]
    return bool(int(bnd, 16) >> bit & 1)


CAP_SYS_NICE, CAP_SYS_RESOURCE = 23, 24


def nice(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[16])


def test_pam_limits_bind_the_user_not_the_monitor(make_server, env):
    """pam_limits runs in the monitor (root), which kept the user's limits: with fsize 1000 KB
    it died of SIGXFSZ at its next transfer-log line, ending the session unlogged and with
    PAM's session open, while the uploads (written by the front's workers) were not bound at
    all. A nofile below max_open_files made the user process fail after the 230 (421). Now
    the monitor gets its own limits and priority back (where it may raise them: without
    CAP_SYS_RESOURCE it survives, and logs the transfer-log line it cannot write); the user
    process keeps the user's (but no file size limit: it writes only listings); uploads are
    bound by fsize (552)."""
    conf = env.path("limits-" + secrets.token_hex(3) + ".conf")
    with open(conf, "w") as fh:
        fh.write("alice hard fsize 1000\nalice hard nofile 100\nalice - priority 10\n")
    service = pam_service(env, [f"session required {LIBDIR}/security/pam_limits.so conf={conf}"])
    xferlog = env.path("xferlog-limits")
    with open(xferlog, "wb") as fh:
        fh.write(b"x" * (1100 * 1024))                  # already past the user's fsize
    s = make_server(pam_service=service, xferlog_file=xferlog)
    f = s.ftps_reuse("alice")
    try:
        mon, front, user = session_processes(s, ALICE)
        restored = have_cap(CAP_SYS_RESOURCE)
        if restored:
            assert limits(mon)["Max file size"] == ["unlimited", "unlimited"]
            assert limits(user)["Max file size"] == ["unlimited", "unlimited"]
        if have_cap(CAP_SYS_NICE):
            assert nice(mon) == 0
        assert limits(user)["Max open files"] == ["100", "100"]
        assert nice(user) == 10
        f.storbinary("STOR small.bin", io.BytesIO(b"s" * 1000))
        with pytest.raises(ftplib.error_perm, match="^552"):
            f.storbinary("STOR big.bin", io.BytesIO(b"b" * (2 << 20)))
        assert not os.path.exists(os.path.join(env.home("alice"), "big.bin"))
        assert f.pwd() == "/"                            # the monitor is alive
        assert status(mon)["State"][0] in "SR"
        f.quit()
        if restored:
            with open(xferlog, "rb") as fh:
                tail = fh.read()[1100 * 1024:].decode()
            assert "small.bin" in tail and "big.bin" in tail, tail
    finally:
        f.close()
        for n in ("small.bin", "big.bin"):
            try:
                os.unlink(os.path.join(env.home("alice"), n))
            except FileNotFoundError:
                pass


def test_pam_messages_are_bounded_and_clean(make_server, env):
    """A session module that prints 300 lines of 390 bytes with terminal escapes: more than a
    message to the front holds, so the session hung with no reply; and control bytes reached
    the client. Now at most 20 lines are relayed, then a note, with control characters as ?."""
    script = env.path("chatty-" + secrets.token_hex(3) + ".sh")
    with open(script, "w") as fh:
        fh.write("#!/bin/sh\ni=0\nwhile [ $i -lt 300 ]; do\n"
                 "  printf 'line %03d \\033[2J' $i; head -c 380 /dev/zero | tr '\\0' x; echo\n"
                 "  i=$((i+1))\ndone\n")
    os.chmod(script, 0o755)
    service = pam_service(env, [f"session optional {LIBDIR}/security/pam_exec.so stdout {script}"])
    s = make_server(pam_service=service, login_timeout=10)
    r = s.tls_raw(timeout=15)
    assert r.cmd("USER alice")[0] == 331
    code, lines = r.cmd(f"PASS {USERS['alice'][1]}")
    assert code == 230, lines
    assert len(lines) <= 23, len(lines)
    assert any("further messages not shown" in l for l in lines), lines[-3:]
    assert not any("\x1b" in l for l in lines)
    assert any(l.startswith("230-line 000 ?[2J") for l in lines), lines[:2]
    assert r.cmd("PWD")[0] == 257
    r.close()


def test_root_that_is_not_a_directory_is_refused_before_230(make_server, env):
    """A root (home, or root_dir) that is a file: the login got 230, then the user process
    failed its chroot and the connection closed. Now 530."""
    not_dir = env.path("not-a-dir-" + secrets.token_hex(3))
    open(not_dir, "w").close()
    s = make_server(root_dir=not_dir)
    r = s.tls_raw(timeout=15)
    assert r.cmd("USER alice")[0] == 331
    code, lines = r.cmd(f"PASS {USERS['alice'][1]}")
    assert code == 530, lines
    assert r.cmd("NOOP")[0] == 200
    r.close()
