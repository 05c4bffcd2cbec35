"""make install / uninstall (issue 6): everything under DESTDIR, nothing outside it, and
uninstall removes what install put there."""
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EXPECTED = ["etc/ftpsd.conf", "etc/pam.d/ftpsd", "etc/xinetd.d/ftpsd",
            "etc/xinetd.d/ftpsd-implicit", "usr/sbin/ftpsd",
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


def test_config_not_overwritten(tmp_path):
    dest = tmp_path / "root"
    subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", "PREFIX=/usr"],
                   check=True, capture_output=True)
    conf = dest / "etc/ftpsd.conf"
    conf.write_text("# admin's own\n")
    subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", "PREFIX=/usr"],
                   check=True, capture_output=True)
    assert conf.read_text() == "# admin's own\n"
    subprocess.run(["make", "-s", "-C", ROOT, "uninstall", f"DESTDIR={dest}", "PREFIX=/usr"],
                   check=True, capture_output=True)
    assert conf.read_text() == "# admin's own\n"          # a changed config is kept
