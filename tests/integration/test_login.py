"""USER / PASS through the monitor and PAM: replies, PAM messages, delays, failure limits,
login and idle timeouts, pipelining (rows L, K-05..K-07, G-23, G-26)."""
import os
import select
import socket
import ssl
import time

import pytest

from ftpsd_fixture import LIBDIR, PAM_MATRIX, USERS
from reliability import SyslogMark

PW = {u: p for u, (_, p) in USERS.items()}


def tls_client(server, timeout=10):
    """A RawClient after AUTH TLS. Unlike RawClient.starttls, an EOF without the server's TLS
    close_notify raises SSLEOFError instead of looking like a clean end."""
    r = server.raw(timeout=timeout)
    assert r.reply()[0] == 220
    assert r.cmd("AUTH TLS")[0] == 234
    r.ctx = ssl.create_default_context(cafile=server.env.cert)
    r.ctx.check_hostname = False
    r.sock = r.ctx.wrap_socket(r.sock, server_hostname="localhost", suppress_ragged_eofs=False)
    return r


def read_until_closed(r, limit=5.0, close_notify=True):
    """Reads whatever the server still sends until it closes the connection; returns the bytes.
    Fails if the connection is still open after `limit` seconds, or (on a TLS connection opened
    by tls_client) if it ended without a TLS close_notify (G-23, G-27)."""
    data = r.buf
    r.buf = b""
    r.sock.settimeout(limit)
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            chunk = r.sock.recv(4096)
        except ssl.SSLEOFError:
            if close_notify and isinstance(r.sock, ssl.SSLSocket):
                pytest.fail(f"TLS ended without close_notify after {data!r}")
            return data
        except (ConnectionResetError, BrokenPipeError, ssl.SSLZeroReturnError):
            return data
        except (socket.timeout, TimeoutError):
            break
        if not chunk:
            return data
        data += chunk
    pytest.fail(f"connection still open after {limit} s; received {data!r}")


def test_user_pass_ok_relays_pam_info(server):
    """L-01, L-03: 331 then 230; pam_matrix's PAM_TEXT_INFO comes first as a 230- line."""
    r = tls_client(server)
    code, lines = r.cmd("USER alice")
    assert code == 331 and lines == ["331 Please specify the password."], lines
    code, lines = r.cmd(f"PASS {PW['alice']}")
    assert code == 230, lines
    assert len(lines) >= 2, lines
    assert lines[0] == "230-Authentication succeeded", lines
    assert all(l.startswith("230-") for l in lines[:-1]), lines
    assert lines[-1].startswith("230 "), lines
    # Logged in for real: a file command is answered by the user process.
    assert r.cmd("PWD") == (257, ['257 "/" is the current directory.'])
    r.close()


def test_wrong_password_is_delayed(make_server):
    """L-04 / K-05: the 530 comes only after fail_delay_ms."""
    s = make_server(fail_delay_ms=1000)
    r = tls_client(s)
    assert r.cmd("USER alice")[0] == 331
    t0 = time.monotonic()
    code, lines = r.cmd("PASS wrong-password")
    elapsed = time.monotonic() - t0
    assert code == 530, lines
    assert elapsed >= 0.9, f"530 after only {elapsed:.3f} s"
    assert elapsed < 5, elapsed
    r.close()


def test_unknown_user_looks_like_a_known_one(make_server):
    """L-02 / K-07: 331 for an unknown name, then 530 after the same delay as a wrong password."""
    s = make_server(fail_delay_ms=1000)
    r = tls_client(s)
    code, lines = r.cmd("USER nosuchuser")
    assert code == 331 and lines == ["331 Please specify the password."], lines
    t0 = time.monotonic()
    code, lines = r.cmd("PASS whatever")
    elapsed = time.monotonic() - t0
    assert code == 530, lines
    assert elapsed >= 0.9, f"530 for an unknown user after only {elapsed:.3f} s"
    # The final line is the same as for a known user with a wrong password.
    assert lines[-1] == "530 Login incorrect.", lines
    r.close()


@pytest.mark.parametrize("user", ["alice", "nosuchuser"])
def test_failed_authentication_says_nothing_more(server, syslog, user):
    """pam_matrix (verbose) sends PAM_ERROR_MSG "Authentication failed". What modules say when
    authentication fails may differ between an existing account and an unknown one
    (pam_faillock's "account is locked"), so it goes to the log, not to the client (RFC 2577
    §5): both get the same single line."""
    mark = SyslogMark(syslog)
    r = tls_client(server)
    assert r.cmd(f"USER {user}")[0] == 331
    code, lines = r.cmd("PASS not-the-password")
    assert (code, lines) == (530, ["530 Login incorrect."])
    r.close()
    log = mark.text(wait_for="PAM said")
    assert log is None or "PAM said (not shown to the client): Authentication failed" in log, log


def test_account_stage_messages_are_shown(make_server, env):
    """After the right password, what the account stage says is the client's to read: a
    module refusing the account explains why in 530- lines."""
    script = env.path("acct-refuse.sh")
    with open(script, "w") as fh:
        fh.write("#!/bin/sh\necho 'Logins are closed for maintenance until 14:00.'\nexit 1\n")
    os.chmod(script, 0o755)
    name = env.pam_service("ftpsd-acct-", [
        f"auth required {PAM_MATRIX} passdb={{passdb}}",
        f"account requisite {LIBDIR}/security/pam_exec.so stdout {script}",
        f"account required {PAM_MATRIX} passdb={{passdb}}",
        f"session required {PAM_MATRIX} passdb={{passdb}}"])
    s = make_server(pam_service=name)
    r = tls_client(s)
    assert r.cmd("USER alice")[0] == 331
    code, lines = r.cmd(f"PASS {PW['alice']}")
    assert code == 530, lines
    assert lines[0] == "530-Logins are closed for maintenance until 14:00.", lines
    r.close()


def test_pass_first_gets_503(server):
    """L-06 / G-11."""
    r = tls_client(server)
    assert r.cmd(f"PASS {PW['alice']}")[0] == 503
    # Still usable afterwards.
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd(f"PASS {PW['alice']}")[0] == 230
    r.close()


def test_pass_without_user_after_a_failure_gets_503(server):
    """A failed PASS consumes the USER: the next PASS must be preceded by USER again."""
    r = tls_client(server)
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd("PASS wrong")[0] == 530
    assert r.cmd(f"PASS {PW['alice']}")[0] == 503
    r.close()


def test_failure_then_success_on_same_connection(server):
    r = tls_client(server)
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd("PASS wrong")[0] == 530
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd(f"PASS {PW['alice']}")[0] == 230
    assert r.cmd("PWD")[0] == 257
    r.close()


def test_max_login_failures_closes_with_421(make_server):
    """L-05 / K-06: the last allowed failure gets 421 and the connection is closed."""
    s = make_server(max_login_failures=2)
    r = tls_client(s)
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd("PASS wrong1")[0] == 530
    assert r.cmd("USER alice")[0] == 331
    code, lines = r.cmd("PASS wrong2")
    assert code == 421, lines
    assert all(l.startswith("421") for l in lines), lines
    rest = read_until_closed(r)
    assert rest == b"", rest
    r.close()


def test_default_three_failures_then_421(server):
    """The default max_login_failures is 3 (ftpsd.conf(5)); unknown users count too."""
    r = tls_client(server)
    for i, user in enumerate(["alice", "nosuchuser"]):
        assert r.cmd(f"USER {user}")[0] == 331
        assert r.cmd(f"PASS wrong{i}")[0] == 530
    assert r.cmd("USER bob")[0] == 331
    code, lines = r.cmd("PASS wrong-again")
    assert code == 421, lines
    read_until_closed(r)
    r.close()


def test_third_attempt_may_succeed(server):
    """Two failures do not lock the connection: the third (last allowed) attempt can log in."""
    r = tls_client(server)
    for i in range(2):
        assert r.cmd("USER alice")[0] == 331
        assert r.cmd(f"PASS wrong{i}")[0] == 530
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd(f"PASS {PW['alice']}")[0] == 230
    r.close()


def test_user_after_login_refused(server):
    """L-13: a second USER after login is refused with 530; the session stays alice's."""
    r = tls_client(server)
    r.login("alice")
    code, lines = r.cmd("USER bob")
    assert code == 530, lines
    # PASS after login: 230, no new authentication.
    code, lines = r.cmd(f"PASS {PW['bob']}")
    assert code == 230, lines
    # Still alice: her root directory belongs to her uid.
    code, lines = r.cmd("MLST /")
    assert code == 250 and f"unix.owner={USERS['alice'][0]};" in lines[1], lines
    r.close()


def test_pass_after_login_with_wrong_password_still_230(server):
    r = tls_client(server)
    r.login("alice")
    assert r.cmd("PASS anything")[0] == 230
    r.close()


def test_login_timeout(make_server):
    """No login within login_timeout: 421 and close, even when commands keep coming."""
    s = make_server(login_timeout=2)
    r = s.raw()
    assert r.reply()[0] == 220
    t0 = time.monotonic()  # the server starts its clock just before the 220; not its start-up
    r.starttls(s.env.cert)
    # NOOPs do not extend the login timeout (they would extend the idle timeout).
    code = None
    while time.monotonic() - t0 < 6:
        try:
            code, lines = r.cmd("NOOP")
        except (EOFError, OSError):
            pytest.fail("closed without a 421")
        if code != 200:
            break
        time.sleep(0.3)
    elapsed = time.monotonic() - t0
    assert code == 421, lines
    assert "timeout" in lines[0].lower(), lines
    assert 1.5 <= elapsed < 3.5, elapsed
    read_until_closed(r)
    r.close()


def test_login_timeout_idle_client(make_server):
    """A client that connects and sends nothing at all gets 421 after login_timeout."""
    s = make_server(login_timeout=2)
    r = s.raw()
    assert r.reply()[0] == 220
    t0 = time.monotonic()  # the server starts its clock just before the 220; not its start-up
    r.sock.settimeout(6)
    code, lines = r.reply()
    elapsed = time.monotonic() - t0
    assert code == 421, lines
    assert 1.5 <= elapsed < 3.5, elapsed
    read_until_closed(r)
    r.close()


def test_login_timeout_includes_tls_handshake(make_server):
    """ftpsd.conf(5): login_timeout counts from the connection, TLS handshake included.
    A client that waits, then sends AUTH TLS and never starts the handshake, must still be
    closed login_timeout seconds after it connected."""
    s = make_server(login_timeout=2)
    r = s.raw()
    assert r.reply()[0] == 220
    t0 = time.monotonic()  # the server starts its clock just before the 220; not its start-up
    time.sleep(1.5)
    assert r.cmd("AUTH TLS")[0] == 234
    # Never send a ClientHello: the server must give up at the login deadline (t0 + 2 s).
    r.sock.settimeout(6)
    try:
        while r.sock.recv(4096):
            pass
    except OSError:
        pass
    elapsed = time.monotonic() - t0
    assert elapsed < 2.8, f"closed only {elapsed:.2f} s after connecting (login_timeout=2)"
    r.close()


def test_rein_does_not_extend_login_timeout(make_server):
    """With allow_rein = yes, a client that never logs in must still be closed after
    login_timeout, however many REINs it sends."""
    s = make_server(allow_rein="yes", login_timeout=2)
    r = s.raw()
    assert r.reply()[0] == 220
    t0 = time.monotonic()  # the server starts its clock just before the 220; not its start-up
    code, lines = None, None
    while time.monotonic() - t0 < 4.5:
        try:
            code, lines = r.cmd("REIN")
        except (EOFError, OSError):
            break
        if code != 220:
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - t0
    assert code == 421, lines
    assert elapsed < 3.5, elapsed
    r.close()


def test_login_timeout_does_not_apply_after_login(make_server):
    s = make_server(login_timeout=2, idle_timeout=10)
    r = tls_client(s)
    r.login("alice")
    time.sleep(2.6)
    assert r.cmd("NOOP")[0] == 200
    r.close()


def test_idle_timeout_after_login(make_server):
    """G-23: no command for idle_timeout seconds: 421 and close."""
    s = make_server(idle_timeout=2)
    r = tls_client(s)
    r.login("alice")
    t0 = time.monotonic()
    r.sock.settimeout(6)
    code, lines = r.reply()
    elapsed = time.monotonic() - t0
    assert code == 421, lines
    assert "timeout" in lines[0].lower(), lines
    assert 1.5 <= elapsed < 3.5, elapsed
    read_until_closed(r)
    r.close()


def test_idle_timeout_is_reset_by_commands(make_server):
    s = make_server(idle_timeout=2)
    r = tls_client(s)
    r.login("alice")
    for _ in range(3):  # 3 x 1.2 s > 2 s in total, but never 2 s without a command
        time.sleep(1.2)
        assert r.cmd("NOOP")[0] == 200
    r.sock.settimeout(6)
    assert r.reply()[0] == 421
    r.close()


def test_partial_line_does_not_reset_idle_timeout(make_server):
    """Bytes that never complete a command line do not keep a session alive."""
    s = make_server(idle_timeout=2)
    r = tls_client(s)
    r.login("alice")
    t0 = time.monotonic()
    for _ in range(15):                  # one byte every 0.4 s, never a line end
        readable, _, _ = select.select([r.sock], [], [], 0.4)
        if readable:
            break
        r.send(b"N")
    elapsed = time.monotonic() - t0
    data = read_until_closed(r)
    assert data.startswith(b"421 "), data
    assert 1.5 <= elapsed < 3.5, elapsed
    r.close()


def test_password_with_spaces(server):
    """carol's password has spaces: everything after "PASS " is the password."""
    assert " " in PW["carol"]
    r = tls_client(server)
    assert r.cmd("USER carol")[0] == 331
    code, lines = r.cmd(f"PASS {PW['carol']}")
    assert code == 230, lines
    r.close()


def test_password_extra_leading_space_is_part_of_it(server):
    """Exactly one SP separates verb and argument: "PASS  x" means the password " x"."""
    r = tls_client(server)
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd(f"PASS  {PW['alice']}")[0] == 530
    r.close()


def test_empty_and_overlong_passwords_fail_cleanly(server):
    r = tls_client(server)
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd("PASS")[0] == 530
    assert r.cmd("USER alice")[0] == 331
    # Longer than the monitor accepts (1023 bytes): refused like a wrong password.
    code, lines = r.cmd("PASS " + "x" * 2000)
    assert code == 530, lines
    r.close()


def test_overlong_user_name(server):
    r = tls_client(server)
    assert r.cmd("USER " + "u" * 300)[0] == 501
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd(f"PASS {PW['alice']}")[0] == 230
    r.close()


@pytest.mark.parametrize("name", ["root", "a/b", "x:y", "..", "bad\x01name"])
def test_refused_user_names(server, name):
    """root and names that cannot be account names get 331 then 530, like any failure."""
    r = tls_client(server)
    assert r.cmd(f"USER {name}")[0] == 331
    assert r.cmd("PASS whatever")[0] == 530
    r.close()


def test_lower_case_login_verbs(server):
    """G-06."""
    r = tls_client(server)
    assert r.cmd("user alice")[0] == 331
    assert r.cmd(f"pAsS {PW['alice']}")[0] == 230
    r.close()


def test_pipelined_login_commands(server):
    """G-26: USER, PASS, PWD, PBSZ, PROT in one TLS write: each answered, in order."""
    r = tls_client(server)
    r.send(f"USER alice\r\nPASS {PW['alice']}\r\nPWD\r\nPBSZ 0\r\nPROT P\r\n".encode())
    replies = [r.reply() for _ in range(5)]
    codes = [c for c, _ in replies]
    assert codes == [331, 230, 257, 200, 200], replies
    assert replies[2][1] == ['257 "/" is the current directory.']
    assert replies[3][1] == ["200 PBSZ=0"]
    # Nothing more was queued.
    assert r.cmd("NOOP") == (200, ["200 NOOP ok."])
    r.close()


def test_pipelined_failed_login_then_commands(server):
    """Commands pipelined behind a failing PASS (answered after the fail delay) are not lost."""
    r = tls_client(server)
    r.send(b"USER alice\r\nPASS wrong\r\nNOOP\r\nUSER alice\r\n"
           + f"PASS {PW['alice']}\r\nPWD\r\n".encode())
    codes = [r.reply()[0] for _ in range(6)]
    assert codes == [331, 530, 200, 331, 230, 257], codes
    r.close()


def test_nothing_runs_after_the_last_failure(make_server):
    """Commands pipelined behind the PASS that ends the connection are never run."""
    s = make_server(max_login_failures=1)
    r = tls_client(s)
    r.send(f"USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS {PW['alice']}\r\n".encode())
    assert r.reply()[0] == 331
    assert r.reply()[0] == 421
    assert read_until_closed(r) == b""
    r.close()


@pytest.mark.parametrize("name", ["nosuchuser", "root", "bad/name"])
def test_refusals_take_the_same_delay(make_server, name):
    """No timing difference between a wrong password and names refused before PAM."""
    s = make_server(fail_delay_ms=1000)
    r = tls_client(s)
    assert r.cmd(f"USER {name}")[0] == 331
    t0 = time.monotonic()
    assert r.cmd("PASS x")[0] == 530
    assert time.monotonic() - t0 >= 0.9
    r.close()


def test_pipelined_in_plaintext_before_auth(server):
    r = server.raw()
    assert r.reply()[0] == 220
    r.send(b"NOOP\r\nSYST\r\nFEAT\r\nNOOP\r\n")
    codes = [r.reply()[0] for _ in range(4)]
    assert codes == [200, 215, 211, 200], codes
    r.close()


def test_new_connection_after_lockout_works(make_server):
    """The failure limit is per connection: a new connection can log in."""
    s = make_server(max_login_failures=1)
    r = tls_client(s)
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd("PASS wrong")[0] == 421
    read_until_closed(r)
    r.close()
    r = tls_client(s)
    r.login("alice")
    r.close()


def test_each_user_gets_own_identity(server):
    """bob and carol log in too; each session starts in its own root."""
    for user in ("bob", "carol"):
        r = tls_client(server)
        r.login(user)
        assert r.cmd("PWD")[1] == ['257 "/" is the current directory.']
        r.close()
