"""make install / uninstall (issue 6): everything under DESTDIR, nothing outside it, and
uninstall removes what install put there. The logrotate file it installs parses, and rotates
the transfer log of a live server as its comments say."""
import grp
import gzip
import io
import os
import re
import shutil
import stat
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EXPECTED = ["etc/ftpsd.conf", "etc/pam.d/ftpsd", "etc/xinetd.d/ftpsd",
            "etc/xinetd.d/ftpsd-implicit", "etc/ftpusers", "usr/share/ftpsd/ftpusers",
            "usr/sbin/ftpsd",
            "usr/lib/systemd/system/ftpsd.socket", "usr/lib/systemd/system/ftpsd@.service",
            "usr/lib/systemd/system/ftpsd-implicit.socket",
            "usr/lib/systemd/system/ftpsd-implicit@.service",
            "usr/share/man/man8/ftpsd.8", "usr/share/man/man5/ftpsd.conf.5",
            "etc/logrotate.d/ftpsd"]


def test_install_and_uninstall(tmp_path):
    dest = tmp_path / "root"
    watched = ["/etc", "/usr/sbin", "/usr/local", "/usr/lib/systemd/system",
               "/lib/systemd/system", "/usr/share/man/man5", "/usr/share/man/man8",
               "/usr/share/ftpsd"]

    def snapshot():
        seen = set()
        for top in watched:
            for dirpath, dirnames, filenames in os.walk(top):
                for n in dirnames + filenames:
                    p = os.path.join(dirpath, n)
                    try:
                        seen.add((p, os.lstat(p).st_mtime_ns))
                    except OSError:
                        pass
        return seen

    before = snapshot()
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", "PREFIX=/usr"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    changed = snapshot() ^ before
    assert not changed, f"make install touched files outside DESTDIR: {sorted(changed)[:10]}"
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == sorted(EXPECTED)
    assert (dest / "usr/share/ftpsd/empty").is_dir()
    assert oct((dest / "usr/sbin/ftpsd").stat().st_mode & 0o777) == "0o755"
    svc = (dest / "usr/lib/systemd/system/ftpsd@.service").read_text()
    assert "ExecStart=/usr/sbin/ftpsd -f /etc/ftpsd.conf" in svc
    # the transfer log's directory, as the logrotate file's create line has it
    logdir = dest / "var/log/ftpsd"
    assert logdir.is_dir() and stat.S_IMODE(logdir.stat().st_mode) == 0o750
    if os.geteuid() == 0:
        assert logdir.stat().st_uid == 0 and logdir.stat().st_gid == loggroup()[1]
    r = subprocess.run(["make", "-s", "-C", ROOT, "uninstall", f"DESTDIR={dest}", "PREFIX=/usr"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert [p for p in dest.rglob("*") if p.is_file()] == []
    assert not logdir.exists()


def loggroup():
    """The group the Makefile gives the log directory and the logrotate file's new files: adm
    where it exists (Debian's group for reading logs), else root."""
    try:
        return "adm", grp.getgrnam("adm").gr_gid
    except KeyError:
        return "root", 0


def make(target, dest, *args):
    return subprocess.run(["make", "-s", "-C", ROOT, target, f"DESTDIR={dest}", "PREFIX=/usr",
                           *args], check=True, capture_output=True, text=True)


def test_config_not_overwritten(tmp_path):
    """Every file under /etc is the admin's once installed: a reinstall leaves an edited one
    alone (an xinetd service switched on stays on), uninstall keeps it, and removes only the
    ones still as installed."""
    dest = tmp_path / "root"
    make("install", dest)
    etc = sorted(p for p in (dest / "etc").rglob("*") if p.is_file())
    assert {str(p.relative_to(dest)) for p in etc} == {f for f in EXPECTED
                                                       if f.startswith("etc/")}
    edited = {}
    for p in etc:
        text = p.read_text()
        if p.name == "ftpsd" and p.parent.name == "xinetd.d":
            assert "disable\t\t= yes" in text
            text = text.replace("disable\t\t= yes", "disable\t\t= no")
        edited[p] = text + "# admin's own\n"
        p.write_text(edited[p])
    make("install", dest)
    for p, text in edited.items():
        assert p.read_text() == text, f"make install overwrote the admin's {p.name}"
    make("uninstall", dest)
    for p, text in edited.items():
        assert p.read_text() == text, f"make uninstall removed the admin's {p.name}"


def test_uninstall_removes_unchanged_config(tmp_path):
    dest = tmp_path / "root"
    make("install", dest)
    pam = dest / "etc/pam.d/ftpsd"
    pam.write_text(pam.read_text() + "# admin's own\n")
    make("uninstall", dest)
    left = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert left == ["etc/pam.d/ftpsd"]


def test_modes_do_not_follow_the_umask(tmp_path):
    """A root shell with umask 077 installs the same modes as one with 022."""
    dest = tmp_path / "root"
    r = subprocess.run(f"umask 077 && make -s -C {ROOT} install DESTDIR={dest} PREFIX=/usr",
                       shell=True, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    modes = {str(p.relative_to(dest)): oct(p.stat().st_mode & 0o7777) for p in dest.rglob("*")}
    # the log directory is 0750 on purpose (logs are not everyone's to read)
    wrong = {p: m for p, m in modes.items()
             if m != ("0o750" if p == "var/log/ftpsd" else
                      "0o755" if p == "usr/sbin/ftpsd" or (dest / p).is_dir() else "0o644")}
    assert not wrong, wrong


def test_default_prefix_paths_in_man_pages(tmp_path):
    """A default build (PREFIX=/usr/local) compiles in /usr/local/share/ftpsd/empty: the man
    pages it installs say so, and name the binary where it is."""
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    binary = (dest / "usr/local/sbin/ftpsd").read_bytes()
    assert b"/usr/local/share/ftpsd/empty\0" in binary and b"/etc/ftpsd.conf\0" in binary
    conf5 = (dest / "usr/local/share/man/man5/ftpsd.conf.5").read_text()
    ftpsd8 = (dest / "usr/local/share/man/man8/ftpsd.8").read_text()
    assert ".IR /usr/local/share/ftpsd/empty ." in conf5
    assert "/usr/share/ftpsd/empty" not in conf5 + ftpsd8
    assert "/usr/local/sbin/ftpsd" in ftpsd8 and "/usr/sbin/ftpsd" not in ftpsd8
    assert ".IR /etc/ftpsd.conf ." in ftpsd8
    for page in (dest / "usr/local/share/man").rglob("ftpsd*"):
        r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", str(page)],
                           capture_output=True, text=True, env={**os.environ, "MANWIDTH": "80"})
        assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_ftpusers_denies_system_accounts(tmp_path):
    """pam.d/ftpsd denies the users of /etc/ftpusers (onerr=succeed: no file, no one denied):
    make install creates that file, listing root and the system accounts."""
    dest = tmp_path / "root"
    make("install", dest)
    pam = (dest / "etc/pam.d/ftpsd").read_text()
    m = re.search(r"^auth\s+required\s+pam_listfile\.so .*\bfile=(\S+)", pam, re.M)
    assert m and "sense=deny" in m.group(0), pam
    listed = (dest / m.group(1).lstrip("/")).read_text().split()
    for user in ("root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news",
                 "uucp", "nobody"):
        assert user in listed, user
    # the same list as Debian's vsftpd and proftpd-core ship, byte for byte (they own
    # /etc/ftpusers as a conffile; identical bytes spare a conffile prompt)
    assert (dest / "usr/share/ftpsd/ftpusers").read_bytes() == \
        (dest / "etc/ftpusers").read_bytes()


def test_existing_ftpusers_kept(tmp_path):
    """Another FTP server's list (pure-ftpd's is longer) is neither replaced nor removed."""
    dest = tmp_path / "root"
    (dest / "etc").mkdir(parents=True)
    theirs = "# /etc/ftpusers: list of users disallowed FTP access.\nroot\nproxy\n"
    (dest / "etc/ftpusers").write_text(theirs)
    make("install", dest)
    assert (dest / "etc/ftpusers").read_text() == theirs
    make("uninstall", dest)
    assert (dest / "etc/ftpusers").read_text() == theirs


# --- the logrotate file ----------------------------------------------------------------------

def logrotate(*args):
    path = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not os.access(path, os.X_OK):
        pytest.skip("logrotate is not installed (tests/lib/install-deps.sh installs it)")
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=60)


def test_logrotate_file_installed_and_parses(tmp_path):
    """make install puts /etc/logrotate.d/ftpsd there, for /var/log/ftpsd/xferlog with the
    settings its comments promise, and logrotate -d (a dry run) reads it without an error
    (the real /var/log/ftpsd need not exist: missingok)."""
    dest = tmp_path / "root"
    make("install", dest)
    conf = dest / "etc/logrotate.d/ftpsd"
    text = conf.read_text()
    stanza = re.search(r"^/var/log/ftpsd/xferlog \{\n(.*?)^\}", text, re.M | re.S)
    assert stanza, text
    directives = [l.strip() for l in stanza.group(1).splitlines()
                  if l.strip() and not l.strip().startswith("#")]
    for d in ("missingok", "notifempty", "compress", "delaycompress",
              f"create 0640 root {loggroup()[0]}"):
        assert d in directives, (d, directives)
    rotate = [int(d.split()[1]) for d in directives if d.startswith("rotate ")]
    assert rotate and rotate[0] >= 4, directives
    # nothing holds the file open: no signal, no restart
    assert not [d for d in directives if d.split()[0] in ("postrotate", "prerotate",
                                                          "copytruncate")], directives
    r = logrotate("-d", "-s", str(tmp_path / "state"), str(conf))
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "error" not in out.lower(), out
    assert "/var/log/ftpsd/xferlog" in out, out


def wait_for_line(path, needle, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and needle in open(path).read():
            return
        time.sleep(0.1)
    raise AssertionError(f"{needle} not in {path}: "
                         f"{open(path).read() if os.path.exists(path) else 'missing'}")


def test_logrotate_rotates_live_xferlog(make_server, env, tmp_path):
    """The installed logrotate file, its path moved into a test directory, run for real
    (logrotate -f) while a server writes the xferlog: a session open across the rotation goes
    on writing into the renamed file (.1, left uncompressed by delaycompress), a session
    started after it writes into the new file, which logrotate created 0640 with the
    directory's group; the next rotation compresses the older file, and an empty log is not
    rotated (notifempty)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the server's monitor and logrotate's create root <group>")
    dest = tmp_path / "root"
    make("install", dest)
    group, gid = loggroup()
    # as make install makes it: root's, 0750 (logrotate refuses a directory others may write)
    logdir = env.path(f"logrotate-{os.getpid()}-{time.monotonic_ns()}")
    os.mkdir(logdir)
    os.chown(logdir, 0, gid)
    os.chmod(logdir, 0o750)
    xferlog = os.path.join(logdir, "xferlog")
    conf = tmp_path / "ftpsd.logrotate"
    conf.write_text((dest / "etc/logrotate.d/ftpsd").read_text()
                    .replace("/var/log/ftpsd/", logdir + "/"))
    conf.chmod(0o644)
    state = str(tmp_path / "state")
    home = env.home("alice")
    names = ["lr-before.bin", "lr-during.bin", "lr-after.bin"]
    s = make_server(xferlog_file=xferlog)
    try:
        early = s.ftps_reuse("alice")
        early.storbinary(f"STOR {names[0]}", io.BytesIO(b"b" * 100))
        wait_for_line(xferlog, names[0])
        assert stat.S_IMODE(os.stat(xferlog).st_mode) == 0o640

        r = logrotate("-f", "-s", state, str(conf))
        assert r.returncode == 0, r.stdout + r.stderr
        assert sorted(os.listdir(logdir)) == ["xferlog", "xferlog.1"], os.listdir(logdir)
        st = os.stat(xferlog)
        assert st.st_size == 0 and stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
        assert (st.st_uid, st.st_gid) == (0, gid)

        # the session open across the rotation: the renamed file
        early.storbinary(f"STOR {names[1]}", io.BytesIO(b"d" * 200))
        wait_for_line(xferlog + ".1", names[1])
        early.quit()
        # a session started after it: the new file
        late = s.ftps_reuse("alice")
        late.storbinary(f"STOR {names[2]}", io.BytesIO(b"a" * 300))
        late.quit()
        wait_for_line(xferlog, names[2])
        old, new = open(xferlog + ".1").read(), open(xferlog).read()
        assert names[0] in old and names[1] in old and names[2] not in old, old
        assert names[2] in new and names[0] not in new and names[1] not in new, new

        # the next rotation: .1 becomes .2.gz, the newest rotated file stays plain
        r = logrotate("-f", "-s", state, str(conf))
        assert r.returncode == 0, r.stdout + r.stderr
        assert sorted(os.listdir(logdir)) == ["xferlog", "xferlog.1", "xferlog.2.gz"]
        assert gzip.open(xferlog + ".2.gz", "rt").read() == old
        assert open(xferlog + ".1").read() == new
        assert stat.S_IMODE(os.stat(xferlog).st_mode) == 0o640
        # the new file is empty: nothing to rotate
        r = logrotate("-f", "-s", state, str(conf))
        assert r.returncode == 0, r.stdout + r.stderr
        assert sorted(os.listdir(logdir)) == ["xferlog", "xferlog.1", "xferlog.2.gz"]
    finally:
        for n in names:
            try:
                os.unlink(os.path.join(home, n))
            except OSError:
                pass
