"""Which account a login becomes: an alias of root (another name with uid 0), and a PAM module
that maps the name typed to another account (PAM_USER), as pam_userdb-style stacks do."""
import io
import os
import re
import secrets

import pytest

from ftpsd_fixture import LIBDIR, PAM_MATRIX, USERS
from reliability import SyslogMark

PW = {u: pw for u, (_, pw) in USERS.items()}
BOB = USERS["bob"][0]


def login(server, user, password):
    r = server.tls_raw()
    assert r.cmd(f"USER {user}")[0] == 331
    code = r.cmd(f"PASS {password}")[0]
    return r, code


@pytest.fixture
def recording_service(env):
    """A pam_wrapper service: pam_matrix authenticates, then pam_set_items sets PAM_USER from
    the server's environment (the mapping), pam_permit passes the account stage whatever the
    name, and pam_exec records each session stage with the user it runs for."""
    log = env.path("ftpsd-map-" + secrets.token_hex(3) + ".log")
    script = log[:-4] + ".sh"
    with open(script, "w") as fh:
        fh.write(f'#!/bin/sh\necho "$PAM_TYPE $PAM_USER" >> {log}\nexit 0\n')
    os.chmod(script, 0o755)
    name = env.pam_service("ftpsd-map-", [
        f"auth required {PAM_MATRIX} passdb={{passdb}}",
        f"auth required {LIBDIR}/pam_wrapper/pam_set_items.so",
        f"account required {LIBDIR}/security/pam_permit.so",
        f"session required {LIBDIR}/security/pam_exec.so {script}"])
    open(log, "w").close()
    return name, log


def records(log):
    with open(log) as fh:
        return [l.split() for l in fh.read().splitlines()]


def test_alias_of_root_is_refused(make_server, env, tmp_path):
    """Root is refused by its uid, not its name: 'toor' with uid 0 and a password PAM accepts
    gets 530, where alice on the same server gets 230."""
    passwd = tmp_path / "passwd"
    with open(env.passwd) as fh:
        passwd.write_text(fh.read() + "toor:x:0:0:alias of root:/root:/bin/bash\n")
    name = env.pam_service("ftpsd-toor-",
                       [f"{kind} required {PAM_MATRIX} passdb={{passdb}}"
                        for kind in ("auth", "account", "session")],
                       {"toor": "toor-secret", "alice": PW["alice"]})
    s = make_server(pam_service=name, prefix=("env", f"NSS_WRAPPER_PASSWD={passwd}"))
    r, code = login(s, "toor", "toor-secret")
    assert code == 530
    r.close()
    r, code = login(s, "alice", PW["alice"])
    assert code == 230
    r.close()


@pytest.mark.parametrize("mapped", ["root", "../bob"])
def test_name_mapped_to_a_refused_account_before_the_session(make_server, recording_service,
                                                             mapped):
    """A module that maps the login to root, or to a name no account may have, gets 530, and
    PAM's session stage never runs for it (pam_limits, pam_mount and the like would act for
    root before the refusal)."""
    service, log = recording_service
    s = make_server(pam_service=service, prefix=("env", f"PAM_USER={mapped}"))
    r, code = login(s, "alice", PW["alice"])
    assert code == 530
    r.close()
    assert records(log) == []


def test_name_mapped_to_another_account(make_server, recording_service, env, syslog):
    """A mapping PAM settles on is the session's account: alice's password, bob's session
    (his root, his uid on what is written), PAM's session is bob's, and every process's log
    lines name bob (the front's used to name the name typed)."""
    service, log = recording_service
    s = make_server(pam_service=service, prefix=("env", "PAM_USER=bob"))
    mark = SyslogMark(syslog)
    ftp = s.ftps_reuse("alice")
    ftp.storbinary("STOR mapped.txt", io.BytesIO(b"x"))
    ftp.quit()
    path = os.path.join(env.home("bob"), "mapped.txt")
    assert os.stat(path).st_uid == BOB
    os.unlink(path)
    assert ["open_session", "bob"] in records(log)
    text = mark.text(wait_for=re.compile(r"user=bob: .*STOR"))
    if text is not None:
        assert re.search(r"user=bob: .*STOR", text), text
        assert "user=alice" not in text, text


def test_pam_faillock_locks_after_failures_across_connections(make_server, env, tmp_path,
                                                               syslog):
    """pam_faillock in the auth stage, as Debian documents it: after deny=3 failures (three
    connections, so max_login_failures does not end them first) the right password is refused
    too, with the same single 530 line as a wrong one; the lock message goes to the log."""
    tally = tmp_path / "faillock"
    tally.mkdir()
    fl = f"{LIBDIR}/security/pam_faillock.so dir={tally} deny=3 unlock_time=600"
    name = env.pam_service("ftpsd-faillock-", [
        f"auth requisite {fl} preauth",
        f"auth [success=1 default=ignore] {PAM_MATRIX} passdb={{passdb}}",
        f"auth [default=die] {fl} authfail",
        f"auth sufficient {fl} authsucc",
        f"auth required {LIBDIR}/security/pam_deny.so",
        f"account required {fl}",
        f"account required {PAM_MATRIX} passdb={{passdb}}",
        f"session required {PAM_MATRIX} passdb={{passdb}}"])
    s = make_server(pam_service=name, max_login_failures=1)
    r, code = login(s, "bob", PW["bob"])
    assert code == 230
    r.close()
    for _ in range(3):
        r = s.tls_raw()
        assert r.cmd("USER bob")[0] == 331
        wrong = r.cmd("PASS wrong")
        assert wrong[0] == 421, wrong  # max_login_failures = 1 ends each connection
        r.close()
    mark = SyslogMark(syslog)
    r = s.tls_raw()
    assert r.cmd("USER bob")[0] == 331
    assert r.cmd(f"PASS {PW['bob']}") == wrong
    r.close()
    # alice is not locked by bob's failures
    r, code = login(s, "alice", PW["alice"])
    assert code == 230
    r.close()
    text = mark.text(wait_for="locked")
    if text is not None:
        assert "PAM said (not shown to the client): The account is locked" in text, text
