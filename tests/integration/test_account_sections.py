"""[user NAME] and [group NAME] sections (ftpsd.conf(5) ACCOUNT SECTIONS): root_dir,
write_enable and max_rate for the accounts they name; a [user] section before any [group], the
first [group] section of the account's groups before later ones, both before the main keys."""
import ftplib
import io
import os
import time

import pytest

from ftpsd_fixture import USERS, check_config


def login(s, user):
    f = s.ftps_reuse(user)
    return f


def can_write(f, name):
    try:
        f.storbinary(f"STOR {name}", io.BytesIO(b"w"))
        return True
    except ftplib.error_perm as e:
        assert str(e).startswith("550 Permission denied: uploads and changes are not enabled "
                                 "for this account."), e
        return False


def feat(f):
    return f.sendcmd("FEAT").splitlines()


def test_user_and_group_sections_set_write_enable(make_server, env):
    """[group shared] (alice and bob) takes writing away, [user alice] gives it back to her:
    bob's uploads and MFMT get 550 and his FEAT has no MFMT; alice, and carol (in no section:
    the main write_enable), write."""
    s = make_server(write_enable="yes", sections=(
        "[group shared]\nwrite_enable = no\n"
        "[user alice]\nwrite_enable = yes\n"))
    for user, writes in (("alice", True), ("bob", False), ("carol", True)):
        f = login(s, user)
        name = f"sect-{user}.txt"
        assert can_write(f, name) == writes, user
        assert (" MFMT" in feat(f)) == writes, user
        if not writes:
            with pytest.raises(ftplib.error_perm, match=r"^550"):
                f.sendcmd("MKD sect-dir")
            with pytest.raises(ftplib.error_perm, match=r"^550"):
                f.sendcmd("SITE CHMOD 600 x")
        f.quit()
        path = os.path.join(env.home(user), name)
        assert os.path.exists(path) == writes, user
        if writes:
            os.unlink(path)


def test_main_write_enable_no_and_a_user_section_yes(make_server, env):
    """The other way round: write_enable = no, and [user bob] may write."""
    s = make_server(write_enable="no", sections="[user bob]\nwrite_enable = yes\n")
    f = login(s, "bob")
    assert can_write(f, "sect-bob2.txt")
    f.quit()
    os.unlink(os.path.join(env.home("bob"), "sect-bob2.txt"))
    f = login(s, "alice")
    assert not can_write(f, "sect-alice2.txt")
    f.quit()


def test_first_group_section_wins(make_server, env):
    """Two [group] sections that both name one of bob's groups: the first in the file
    decides; a later one still gives what the first does not set."""
    root = env.path("sect-root-bob")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "marker-root.txt"), "w") as fh:
        fh.write("r")
    s = make_server(write_enable="yes", sections=(
        "[group bob]\nwrite_enable = no\n"
        "[group shared]\nwrite_enable = yes\nroot_dir = " + root + "\n"))
    f = login(s, "bob")
    assert not can_write(f, "x.txt")
    assert "marker-root.txt" in f.nlst()
    f.quit()


def test_user_root_dir(make_server, env):
    """root_dir in [user alice] (with %u): her session starts there; bob's at his home."""
    base = env.path("sect-roots")
    os.makedirs(os.path.join(base, "alice"), exist_ok=True)
    os.chown(os.path.join(base, "alice"), USERS["alice"][0], USERS["alice"][0])
    with open(os.path.join(base, "alice", "in-alice-root.txt"), "w") as fh:
        fh.write("a")
    s = make_server(sections=f"[user alice]\nroot_dir = {base}/%u\n")
    f = login(s, "alice")
    assert f.nlst() == ["in-alice-root.txt"]
    assert f.pwd() == "/"
    f.quit()
    f = login(s, "bob")
    assert "in-alice-root.txt" not in f.nlst()
    f.quit()


def test_group_max_rate(make_server, env):
    """max_rate in [group bob]: bob's downloads are paced, alice's (no section) are not."""
    rate, size = 400_000, 1_200_000
    data = os.urandom(size)
    for user in ("alice", "bob"):
        p = os.path.join(env.home(user), "sect-rate.bin")
        with open(p, "wb") as fh:
            fh.write(data)
        os.chown(p, USERS[user][0], USERS[user][0])
    s = make_server(sections=f"[group bob]\nmax_rate = {rate}\n")
    took = {}
    for user in ("alice", "bob"):
        f = login(s, user)
        got = io.BytesIO()
        t0 = time.monotonic()
        f.retrbinary("RETR sect-rate.bin", got.write)
        took[user] = time.monotonic() - t0
        assert got.getvalue() == data
        f.quit()
        os.unlink(os.path.join(env.home(user), "sect-rate.bin"))
    assert 2.7 <= took["bob"] < 8, took
    assert took["alice"] < 2, took


def test_group_umask(make_server, env):
    """umask in [group shared] (a group that shares its files): bob's uploads and directories
    are group-writable; alice's, under a [user] section that sets her own, are not; carol (in
    neither) has the main umask."""
    s = make_server(write_enable="yes", umask="027", sections=(
        "[user alice]\numask = 077\n[group shared]\numask = 002\n"))
    modes = {}
    for user in ("alice", "bob", "carol"):
        f = login(s, user)
        f.storbinary("STOR sect-umask.txt", io.BytesIO(b"u"))
        f.mkd("sect-umask.d")
        f.quit()
        home = env.home(user)
        modes[user] = (os.stat(os.path.join(home, "sect-umask.txt")).st_mode & 0o777,
                       os.stat(os.path.join(home, "sect-umask.d")).st_mode & 0o777)
        os.unlink(os.path.join(home, "sect-umask.txt"))
        os.rmdir(os.path.join(home, "sect-umask.d"))
    groups = {u: [g for g in open(env.group).read().splitlines()
                  if g.startswith("shared:") and u in g.split(":")[3].split(",")]
              for u in ("alice", "bob", "carol")}
    assert groups["bob"] and groups["alice"] and not groups["carol"], groups
    assert modes == {"alice": (0o600, 0o700), "bob": (0o664, 0o775), "carol": (0o640, 0o750)}, \
        modes


@pytest.mark.parametrize("text, message", [
    ("[user alice]\nbanner = hi\n",
     "'banner' cannot be set in a [user] section (root_dir, write_enable, max_rate, umask, "
     "max_sessions_per_user, deny_file, hide_file and chmod_enable can)"),
    ("[group staff]\numask = 999\n", "umask: '999' must be an octal number such as 022"),
    ("[group staff]\nwrite_enable = maybe\n", "write_enable: 'maybe' must be yes or no"),
    ("[user alice]\nmax_rate = 1\nmax_rate = 2\n",
     "'max_rate' is already set in [user alice] on line"),
    ("[user alice]\n[user alice]\n", "[user alice] is already defined on line"),
    ("[user al:ice]\n", "'al:ice' is not a valid user name"),
    ("[group ]\n", "unknown section"),
    ("[user alice]\nroot_dir = relative\n", "root_dir: 'relative' must be an absolute path"),
    ("[team x]\n", "unknown section '[team x]'"),
])
def test_section_errors_are_reported_with_their_line(env, tmp_path, text, message):
    conf = tmp_path / "s.conf"
    r = check_config(env, conf, text)
    assert r.returncode != 0, r
    assert f"{conf}:" in r.stderr and message in r.stderr, r.stderr


def test_check_warns_of_an_unknown_account(env, tmp_path):
    """ftpsd -t: a section naming a user or group NSS does not know is a warning (a typo, or a
    directory service that is down); the configuration is still OK."""
    conf = tmp_path / "w.conf"
    r = check_config(env, conf, "[user alice]\nwrite_enable = no\n[user alcie]\nwrite_enable = no\n"
                     "[group shared]\nmax_rate = 1000\n[group staf]\nmax_rate = 1000\n")
    assert r.returncode == 0, r
    assert "configuration OK" in r.stdout, r
    warnings = [l for l in r.stderr.splitlines() if "warning:" in l]
    assert warnings == [f"{conf}:7: warning: [user alcie]: no such user on this system",
                        f"{conf}:11: warning: [group staf]: no such group on this system"], r.stderr


def writes_through_nss_shim(make_server, env, setting):
    """A server whose NSS goes through tests/lib/nss_fail_shim.c (setting: its variable), with
    a [group] section for a group that does not exist: alice still writes. The server."""
    s = make_server(write_enable="yes", sections="[group nosuchgroup]\nwrite_enable = no\n",
                    prefix=["env", "LD_PRELOAD=" + env.shim_preload("nss_fail_shim"), setting])
    f = s.ftps_reuse("alice")
    assert can_write(f, "sect-nss.txt")
    f.quit()
    os.unlink(os.path.join(env.home("alice"), "sect-nss.txt"))
    return s


def test_group_nss_cannot_answer_refuses_the_login(make_server, env, syslog):
    """NSS fails to say whether the account is in a [group] section's group (a directory
    service that is down; tests/lib/nss_fail_shim.c): the section might take rights away, so
    the login is refused (530) and logged, where it went on with the main settings. A group
    NSS answers "no such group" for is no failure."""
    s = make_server(write_enable="yes", sections=(
        "[group nosuchgroup]\nwrite_enable = no\n[group ldapgroup]\nwrite_enable = no\n"),
        prefix=["env", "LD_PRELOAD=" + env.shim_preload("nss_fail_shim"),
                "NSS_FAIL_GROUP=ldapgroup"])
    f = s.ftps_reuse()
    with pytest.raises(ftplib.error_perm, match=r"(?s)^530.*530 Login failed \(server "
                                                 r"authentication error\)\.$"):
        f.login("alice", USERS["alice"][1])
    f.close()
    writes_through_nss_shim(make_server, env, "NSS_FAIL_GROUP=ldapgroup")
    if syslog is not None and syslog.available:
        want = "cannot tell whether alice is in group ldapgroup (NSS failed)"
        assert want in syslog.text(wait_for=want)


def test_groups_asked_of_nss_once_per_login(make_server, env):
    """A login with [group] sections asks NSS for the account's groups once, for the sections
    and the user process both (with LDAP, each ask is a query); it asked twice. The shim
    (tests/lib/nss_fail_shim.c with NSS_TRACE) writes each getgrouplist call to stderr."""
    s = writes_through_nss_shim(make_server, env, "NSS_TRACE=1")
    deadline = time.time() + 10
    while True:
        with open(s.stderr.name) as fh:
            calls = [l for l in fh.read().splitlines() if l.startswith("nss-trace: getgrouplist")]
        if calls or time.time() > deadline:
            break
        time.sleep(0.05)
    assert calls == ["nss-trace: getgrouplist alice"], calls


def test_chmod_enable_in_the_main_part_and_a_section(make_server, env):
    """chmod_enable = no refuses SITE CHMOD and leaves the mode the umask gave (a lab whose
    students must not make their work readable to others); [user bob] gives it back to him.
    SITE UMASK may then only make modes stricter: SITE UMASK 000 would make the next upload
    readable by all."""
    s = make_server(write_enable="yes", chmod_enable="no", umask="077",
                    sections="[user bob]\nchmod_enable = yes\n")
    for user, allowed in (("alice", False), ("bob", True)):
        f = login(s, user)
        name = f"chmod-{user}-{os.getpid()}.txt"
        f.storbinary(f"STOR {name}", io.BytesIO(b"c"))
        path = os.path.join(env.home(user), name)
        assert os.stat(path).st_mode & 0o777 == 0o600
        if allowed:
            assert f.sendcmd(f"SITE CHMOD 644 {name}").startswith("200")
            assert os.stat(path).st_mode & 0o777 == 0o644
            assert f.sendcmd("SITE UMASK 000").startswith("200")
        else:
            with pytest.raises(ftplib.error_perm) as e:
                f.sendcmd(f"SITE CHMOD 644 {name}")
            assert str(e.value) == ("550 Permission denied: SITE CHMOD is not enabled for this "
                                    "account."), e.value
            assert os.stat(path).st_mode & 0o777 == 0o600
            for loose in ("000", "022", "070"):
                with pytest.raises(ftplib.error_perm) as e:
                    f.sendcmd(f"SITE UMASK {loose}")
                assert str(e.value) == ("550 Permission denied: without SITE CHMOD, SITE UMASK "
                                        "may only make modes stricter than 0077."), e.value
            assert f.sendcmd("SITE UMASK 0177").startswith("200")
            f.storbinary(f"STOR {name}.2", io.BytesIO(b"c"))
            assert os.stat(path + ".2").st_mode & 0o777 == 0o600
            os.unlink(path + ".2")
        f.quit()
        os.unlink(path)
