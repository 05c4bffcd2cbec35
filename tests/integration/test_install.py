"""make install / uninstall (issue 6): everything under DESTDIR, nothing outside it, and
uninstall removes what install put there."""
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EXPECTED = ["etc/ftpsd.conf", "etc/pam.d/ftpsd", "etc/xinetd.d/ftpsd",
            "etc/xinetd.d/ftpsd-implicit", "etc/ftpusers", "usr/share/ftpsd/ftpusers",
            "usr/sbin/ftpsd",
            "usr/lib/systemd/system/ftpsd.socket", "usr/lib/systemd/system/ftpsd@.service",
            "usr/lib/systemd/system/ftpsd-implicit.socket",
            "usr/lib/systemd/system/ftpsd-implicit@.service",
            "usr/share/man/man8/ftpsd.8", "usr/share/man/man5/ftpsd.conf.5"]


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
    r = subprocess.run(["make", "-s", "-C", ROOT, "uninstall", f"DESTDIR={dest}", "PREFIX=/usr"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert [p for p in dest.rglob("*") if p.is_file()] == []


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
    wrong = {p: m for p, m in modes.items()
             if m != ("0o755" if p == "usr/sbin/ftpsd" or (dest / p).is_dir() else "0o644")}
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
