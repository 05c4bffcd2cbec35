"""The Debian package (contrib/debian, built by `make deb`): lintian is clean, it ships what it
should (and not the test-hooks binary), its maintainer scripts do what they say when run in a
fake environment, its units verify, and the binary and configuration it installs serve a real
FTPS session. The package is extracted with dpkg -x, never installed on this machine."""
import ftplib
import glob
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
import time
import types

import pytest

from ftpsd_fixture import NOPRIV, USERS, Server, wrapper_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEB_DIR = os.path.join(ROOT, "build", "deb")
TOOLS = {"dpkg-buildpackage": "dpkg-dev", "dh": "debhelper", "lintian": "lintian"}



def makefile_version():
    return re.search(r"^VERSION\s*=\s*(\S+)", open(os.path.join(ROOT, "Makefile")).read(),
                     re.M).group(1)


def clean_env():
    """The environment without make's variables: `make check` runs this suite."""
    return {k: v for k, v in os.environ.items()
            if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def deb(tmp_path_factory):
    """Builds the package once per session with `make deb`, then extracts it (dpkg -x) and its
    control files (dpkg-deb -e) into a throwaway directory."""
    if os.geteuid() != 0:
        pytest.skip("needs root: make deb installs its build dependencies, dpkg -x keeps root "
                    "ownership (the empty chroot dir must be root's) and the server chroots")
    missing = [pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)]
    if missing:
        run(["sh", os.path.join(ROOT, "tests", "lib", "install-deps.sh"), "dpkg-dev",
             "debhelper", "lintian"], timeout=900)
        missing = [pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)]
        if missing:
            pytest.skip(f"packaging tools missing and could not be installed: {missing}")
    start = time.monotonic()
    # The work tree as it is, files not yet added to git included (CI builds a clean clone).
    r = run(["make", "-C", ROOT, "deb", "DIST_UNTRACKED=yes"], env=clean_env(), timeout=900)
    seconds = time.monotonic() - start
    if r.returncode != 0:
        pytest.fail("make deb DIST_UNTRACKED=yes failed (the tarball holds the files git "
                    "tracks and the untracked ones it does not ignore):\n"
                    + (r.stdout + r.stderr)[-4000:], pytrace=False)
    debs = [d for d in glob.glob(os.path.join(DEB_DIR, "ftpsd_*.deb"))]
    changes = glob.glob(os.path.join(DEB_DIR, "ftpsd_*.changes"))
    assert len(debs) == 1 and len(changes) == 1, os.listdir(DEB_DIR)
    top = tmp_path_factory.mktemp("package")
    root = top / "root"
    ctl = top / "control"
    for p in (top, root):
        p.mkdir(exist_ok=True)
        os.chmod(p, 0o755)
    subprocess.run(["dpkg", "-x", debs[0], str(root)], check=True)
    subprocess.run(["dpkg-deb", "-e", debs[0], str(ctl)], check=True)
    units = next(d for d in (root / "lib/systemd/system", root / "usr/lib/systemd/system")
                 if d.is_dir())
    return types.SimpleNamespace(deb=debs[0], changes=changes[0], root=root, ctl=ctl,
                                 units=units, top=top, build_seconds=seconds)


def test_versions_agree():
    """contrib/debian/changelog and contrib/ftpsd.spec follow the Makefile's VERSION, and the
    spec ships every unit and xinetd service of the tree (runs without root)."""
    version = makefile_version()
    changelog = open(os.path.join(ROOT, "contrib", "debian", "changelog")).readline()
    assert re.match(rf"ftpsd \({re.escape(version)}-[0-9.]+\) ", changelog), changelog
    spec = open(os.path.join(ROOT, "contrib", "ftpsd.spec")).read()
    assert re.search(rf"^Version:\s+{re.escape(version)}$", spec, re.M)
    files = spec[spec.index("\n%files"):spec.index("\n%changelog")]
    for u in os.listdir(os.path.join(ROOT, "systemd")):
        assert f"%{{_unitdir}}/{u}" in files, u
    for x in os.listdir(os.path.join(ROOT, "xinetd.d")):
        assert f"%{{_sysconfdir}}/xinetd.d/{x}" in files, x
    # and every document of docs/
    doc = re.search(r"^%doc (.*)$", files, re.M).group(1).split()
    for d in os.listdir(os.path.join(ROOT, "docs")):
        assert f"docs/{d}" in doc, d
    # /etc/ftpusers: created by %post where missing, owned by no package of ours
    assert "%{_datadir}/%{name}/ftpusers" in files and "/ftpusers" not in files.replace(
        "%{_datadir}/%{name}/ftpusers", "")
    post = spec[spec.index("\n%post\n"):spec.index("\n%preun")]
    assert re.search(r"\[ ! -e %\{_sysconfdir\}/ftpusers \].*\n.*install -m 0644 "
                     r"%\{_datadir\}/%\{name\}/ftpusers %\{_sysconfdir\}/ftpusers", post), post
    if shutil.which("rpmspec"):
        r = run(["rpmspec", "-q", "--qf", "%{VERSION}\n", os.path.join(ROOT, "contrib",
                                                                       "ftpsd.spec")])
        assert r.returncode == 0 and r.stdout.split() == [version], r.stdout + r.stderr



def test_spec_ships_logrotate():
    """The RPM owns /etc/logrotate.d/ftpsd as a configuration file the admin's edits survive,
    and the transfer log's directory root:root 0750 (Fedora's logs are root's), the group its
    make install line gives the logrotate file's new files (runs without root)."""
    spec = open(os.path.join(ROOT, "contrib", "ftpsd.spec")).read()
    files = spec[spec.index("\n%files"):spec.index("\n%changelog")]
    assert re.search(r"^%config\(noreplace\) %\{_sysconfdir\}/logrotate\.d/%\{name\}$", files,
                     re.M), files
    assert re.search(r"^%dir %attr\(0750,root,root\) %\{_localstatedir\}/log/%\{name\}$", files,
                     re.M), files
    make = re.search(r"^%global ftpsd_make (.*)$", spec, re.M).group(1).split()
    assert "loggroup=root" in make and "logdir=%{_localstatedir}/log/%{name}" in make, make


def test_packages_install_through_make_install():
    """`make install` installs every unit and xinetd service of the tree (Makefile UNITS and
    ETC_FILES), so the Debian and RPM builds take them from there and copy none themselves: a
    second copy loop would hide a file the Makefile forgets (runs without root)."""
    mk = open(os.path.join(ROOT, "Makefile")).read()
    units = re.search(r"^UNITS\s*=\s*(.*)$", mk, re.M).group(1).split()
    etc = re.search(r"^ETC_FILES\s*=\s*(.*)$", mk, re.M).group(1).split()
    assert sorted(units) == sorted(os.listdir(os.path.join(ROOT, "systemd")))
    assert {f"xinetd.d/{x}" for x in os.listdir(os.path.join(ROOT, "xinetd.d"))} <= set(etc)
    rules = open(os.path.join(ROOT, "contrib", "debian", "rules")).read()
    spec = open(os.path.join(ROOT, "contrib", "ftpsd.spec")).read()
    install = spec[spec.index("\n%install\n"):spec.index("\n%check\n")]
    for name, text in (("debian/rules", rules), ("ftpsd.spec %install", install)):
        # the tree's systemd/ and xinetd.d/, not /lib/systemd/... or %{_sysconfdir}/xinetd.d/...
        assert not re.search(r"(?<![\w/}])(systemd|xinetd\.d)/", text), name
        assert "does not (yet)" not in text, name


# DEP-8 (autopkgtest) fields and restrictions, as autopkgtest 5.28 (bookworm) knows them.
DEP8_FIELDS = {"Tests", "Test-Command", "Restrictions", "Features", "Depends",
               "Tests-Directory", "Classes", "Architecture"}
DEP8_RESTRICTIONS = {"allow-stderr", "breaks-testbed", "build-needed", "flaky",
                     "hint-testsuite-triggers", "isolation-container", "isolation-machine",
                     "needs-internet", "needs-reboot", "needs-root", "needs-sudo", "rw-build-tree",
                     "skip-foreign-architecture", "skip-not-installable", "skippable",
                     "superficial"}


def dep8_stanzas(path):
    stanzas, cur, key = [], {}, None
    for line in open(path).read().splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur, key = {}, None
        elif line[0] in " \t":
            cur[key] += " " + line.strip()
        else:
            key, value = line.split(":", 1)
            assert key not in cur, f"{key} twice in a stanza"
            cur[key] = value.strip()
    return stanzas


def test_autopkgtest():
    """contrib/debian/tests: more than ftpsd -V. A test checks the installed configuration
    with ftpsd -t and one serves a login and transfers; the control fields are DEP-8's, every
    test is an executable script, and what a script runs comes from its Depends (runs
    without root; the tests themselves run in a Debian testbed)."""
    tdir = os.path.join(ROOT, "contrib", "debian", "tests")
    stanzas = dep8_stanzas(os.path.join(tdir, "control"))
    scripts = {}
    for s in stanzas:
        assert set(s) <= DEP8_FIELDS, s
        assert ("Tests" in s) != ("Test-Command" in s), s
        restrictions = set(re.split(r"[\s,]+", s.get("Restrictions", ""))) - {""}
        assert restrictions <= DEP8_RESTRICTIONS, restrictions - DEP8_RESTRICTIONS
        depends = {d.split()[0] for d in re.split(r"\s*,\s*", s.get("Depends", "@")) if d}
        for name in s.get("Tests", "").split():
            path = os.path.join(tdir, name)
            assert os.access(path, os.X_OK), f"{name} is not an executable file"
            text = open(path).read()
            assert text.startswith("#!/bin/sh\n") and "set -eu" in text, name
            assert run(["sh", "-n", path]).returncode == 0, name
            if shutil.which("shellcheck"):
                r = run(["shellcheck", "-s", "sh", path])
                assert r.returncode == 0, r.stdout
            scripts[name] = (text, depends, restrictions)
    checks = [n for n, (text, _, r) in scripts.items()
              if re.search(r"/usr/sbin/ftpsd -t -f /etc/ftpsd.conf", text)]
    assert checks and all("needs-root" in scripts[n][2] and "ssl-cert" in scripts[n][1]
                          for n in checks), scripts.keys()
    sessions = [n for n, (text, _, _) in scripts.items() if "--upload-file" in text]
    assert sessions, scripts.keys()
    for n in sessions:
        text, depends, restrictions = scripts[n]
        assert "needs-root" in restrictions
        for tool, pkg in (("curl", "curl"), ("systemd-socket-activate", "systemd"),
                          ("useradd", "passwd"), ("chpasswd", "passwd"),
                          ("userdel", "passwd")):
            if re.search(rf"^\s*(.*[|;&(]\s*)?{tool}\b", text, re.M):
                assert pkg in depends, (n, tool, pkg)

def field(deb, name):
    return run(["dpkg-deb", "-f", deb.deb, name], check=True).stdout.strip()


def test_build_time(deb):
    print(f"make deb took {deb.build_seconds:.1f} s")
    assert deb.build_seconds < 180


def test_lintian_clean(deb):
    r = run(["lintian", "--fail-on", "error,warning", deb.changes], timeout=300)
    tags = [l for l in r.stdout.splitlines() if re.match(r"[EW]: ", l)]
    assert r.returncode == 0 and not tags, r.stdout + r.stderr


def test_control_fields(deb):
    assert field(deb, "Package") == "ftpsd"
    assert field(deb, "Section") == "net"
    assert field(deb, "Priority") == "optional"
    # The package version follows the Makefile's (contrib/debian/changelog is bumped with it).
    assert field(deb, "Version").rsplit("-", 1)[0] == makefile_version()
    depends = field(deb, "Depends")
    for dep in ("adduser", "libpam-modules", "libssl3", "libseccomp2", "libcap-ng0"):
        assert dep in depends
    desc = field(deb, "Description").splitlines()
    assert len(desc) > 5 and len(desc[0]) < 80


def test_file_list(deb):
    root = deb.root
    files = {os.path.relpath(os.path.join(d, f), root)
             for d, dirs, fs in os.walk(root) for f in fs + [x for x in dirs
                                                            if os.path.islink(os.path.join(d, x))]}
    unitdir = os.path.relpath(deb.units, root)
    expected = {"usr/sbin/ftpsd", "etc/ftpsd.conf", "etc/pam.d/ftpsd", "usr/share/ftpsd/ftpusers",
                "usr/share/man/man8/ftpsd.8.gz", "usr/share/man/man5/ftpsd.conf.5.gz",
                "usr/share/doc/ftpsd/copyright", "usr/share/doc/ftpsd/changelog.Debian.gz",
                "etc/logrotate.d/ftpsd"}
    # every unit and xinetd service of the tree (ftpsd.socket, ftpsd@.service, the implicit pair)
    expected |= {f"{unitdir}/{u}" for u in os.listdir(os.path.join(ROOT, "systemd"))}
    expected |= {f"etc/xinetd.d/{x}" for x in os.listdir(os.path.join(ROOT, "xinetd.d"))}
    # every document of docs/ (dh_compress gzips those over 4 KiB)
    docs = {f"usr/share/doc/ftpsd/{d}" for d in os.listdir(os.path.join(ROOT, "docs"))}
    assert all(d in files or d + ".gz" in files for d in docs), sorted(docs)
    assert {"ftpsd.socket", "ftpsd@.service"} <= set(os.listdir(deb.units))
    assert expected <= files, sorted(expected - files)
    assert not [f for f in files if "testhooks" in f], "the test-hooks binary is shipped"
    # vsftpd, proftpd-core and pure-ftpd own /etc/ftpusers: postinst creates it instead
    assert "etc/ftpusers" not in files
    assert (root / "usr/share/ftpsd/ftpusers").read_bytes() == \
        open(os.path.join(ROOT, "contrib", "ftpusers"), "rb").read()
    # nothing outside the usual places
    assert all(re.match(r"(etc|lib|usr/(sbin|share|lib))/", f) for f in files), sorted(files)

    binary = root / "usr/sbin/ftpsd"
    st = binary.stat()
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755
    data = binary.read_bytes()
    assert b"XTST" not in data, "the installed binary was built with FTPSD_TEST_HOOKS"
    # the install paths compiled in are Debian's
    assert b"/etc/ftpsd.conf" in data and b"/usr/share/ftpsd/empty" in data
    assert run([str(binary), "-V"]).stdout.strip() == f"ftpsd {makefile_version()}"

    empty = root / "usr/share/ftpsd/empty"
    st = empty.stat()
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and st.st_gid == 0
    assert stat.S_IMODE(st.st_mode) == 0o755 and os.listdir(empty) == []

    for unit in os.listdir(deb.units):
        text = (deb.units / unit).read_text()
        assert "[Install]" in text or unit.endswith("@.service"), unit
        if unit.endswith(".service"):
            assert re.search(r"^ExecStart=/usr/sbin/ftpsd -f /etc/ftpsd.conf\b", text, re.M), unit


def test_conffiles(deb):
    conffiles = set((deb.ctl / "conffiles").read_text().split())
    etc = {"/" + os.path.relpath(os.path.join(d, f), deb.root)
           for d, _, fs in os.walk(deb.root / "etc") for f in fs}
    assert {"/etc/ftpsd.conf", "/etc/pam.d/ftpsd", "/etc/xinetd.d/ftpsd",
            "/etc/logrotate.d/ftpsd"} <= conffiles
    assert conffiles == etc


def test_logrotate_file(deb, tmp_path):
    """The package ships /etc/logrotate.d/ftpsd (dpkg-deb -c: root's, mode 644) as make install
    writes it with Debian's group: new transfer logs root:adm 0640, as postinst makes their
    directory; logrotate -d reads it without an error. /var/log/ftpsd itself is not in the
    package (postinst creates it root:adm, which the package could not carry)."""
    listing = run(["dpkg-deb", "-c", deb.deb], check=True).stdout.splitlines()
    entries = {l.split()[-1]: l.split() for l in listing}
    assert "./etc/logrotate.d/ftpsd" in entries, listing
    mode, owner = entries["./etc/logrotate.d/ftpsd"][:2]
    assert (mode, owner) == ("-rw-r--r--", "root/root"), entries["./etc/logrotate.d/ftpsd"]
    assert not [p for p in entries if p.startswith("./var/")], sorted(entries)
    text = (deb.root / "etc/logrotate.d/ftpsd").read_text()
    stanza = re.search(r"^/var/log/ftpsd/xferlog \{\n(.*?)^\}", text, re.M | re.S)
    assert stanza, text
    directives = [l.strip() for l in stanza.group(1).splitlines()
                  if l.strip() and not l.strip().startswith("#")]
    for d in ("missingok", "notifempty", "compress", "delaycompress", "create 0640 root adm"):
        assert d in directives, (d, directives)
    lr = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not os.access(lr, os.X_OK):
        pytest.skip("logrotate is not installed (tests/lib/install-deps.sh installs it)")
    r = run([lr, "-d", "-s", str(tmp_path / "state"), str(deb.root / "etc/logrotate.d/ftpsd")])
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "error" not in out.lower(), out


def test_nothing_enabled_or_started_by_text(deb):
    """Whatever the fake environment below can or cannot run: the scripts never enable or
    start a unit, and the purge never removes the user."""
    scripts = {p.name: p.read_text() for p in deb.ctl.iterdir()
               if p.name in ("preinst", "postinst", "prerm", "postrm")}
    allt = "\n".join(scripts.values())
    # deb-systemd-invoke only ever stops (debhelper's start snippets use a variable action)
    actions = re.findall(r"deb-systemd-invoke\s+(?:--user\s+)?(\S+)", allt)
    assert all(a == "stop" for a in actions), actions
    assert not re.search(r"systemctl\s+.*\b(enable|start|restart)\b", allt)
    # `deb-systemd-helper enable` only for a unit the package installed before and an admin
    # enabled (debhelper's --no-enable snippet), never on a first install
    for m in re.finditer(r"deb-systemd-helper enable", allt):
        assert "debian-installed" in allt[max(0, m.start() - 400):m.start()]
    post = scripts["postinst"]
    assert re.search(r"getent passwd ftpsd", post)
    assert re.search(r"adduser --system .*--group --no-create-home\s*\\?\s*--home /nonexistent "
                     r"--shell /usr/sbin/nologin ftpsd", post, re.S)
    assert not re.search(r"^\s*(deluser|userdel|delgroup|groupdel)\b", scripts.get("postrm", ""),
                         re.M)


# --- maintainer scripts in a fake environment ---------------------------------------------
# Each script runs in its own mount namespace where /usr, /etc and /var are read-only, a tmpfs
# stands in for /usr/share (so the empty dir the postinst makes is a throwaway) and for /run
# (with /run/systemd/system, as on a systemd machine), and adduser, getent, deb-systemd-helper,
# deb-systemd-invoke, systemctl and the user-removal commands are fakes that log their
# arguments (deb-systemd-helper answers as the real one does on a first install: never
# installed by the package, and was-enabled true, its default for a unit it has not seen).
# The scripts run with dpkg's real conditions (DPKG_ROOT empty).

FAKE = r"""#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE_LOG"
case "$(basename "$0") $1 $2" in
"getent passwd ftpsd") [ "$FAKE_USER" = 1 ] && echo "ftpsd:x:999:999::/nonexistent:/usr/sbin/nologin" && exit 0; exit 2 ;;
"getent group ftpsd") [ "$FAKE_GROUP" = 1 ] && echo "ftpsd:x:999:" && exit 0; exit 2 ;;
"deb-systemd-helper debian-installed"*) exit 1 ;;
"deb-systemd-helper --quiet was-enabled") exit 0 ;;
"dpkg-query -S /etc/ftpusers") [ "$FAKE_OWNED" = 1 ] && echo "vsftpd: /etc/ftpusers" && exit 0; exit 1 ;;
esac
exit 0
"""

NAMESPACE = r"""set -e
for d in /usr /etc /var; do mount --bind $d $d; mount -o remount,ro,bind $d $d; done
mount -t tmpfs tmpfs /usr/share
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system
# /var/log writable in a throwaway layer, for /var/log/ftpsd (one with a log in it, if asked)
mount -t tmpfs tmpfs /var/log
if [ -n "$PRE_LOGDIR" ]; then
    mkdir /var/log/ftpsd; chmod "$PRE_LOGDIR" /var/log/ftpsd; echo old > /var/log/ftpsd/xferlog.1
fi
# /etc writable in a throwaway layer, for /etc/ftpusers
mkdir -p /run/etc-upper /run/etc-work
mount -t overlay overlay -o lowerdir=/etc,upperdir=/run/etc-upper,workdir=/run/etc-work /etc
rm -f /etc/ftpusers
if [ -n "$PRE_FTPUSERS" ]; then printf '%s' "$PRE_FTPUSERS" > /etc/ftpusers; fi
# the package's files, as dpkg unpacked them before postinst (gone before postrm purge)
if [ -n "$TEMPLATE" ]; then mkdir -p /usr/share/ftpsd && cp "$TEMPLATE" /usr/share/ftpsd/; fi
if [ -n "$PRE_EMPTY" ]; then
    mkdir -p /usr/share/ftpsd/empty; chown 65534:65534 /usr/share/ftpsd/empty
    chmod "$PRE_EMPTY" /usr/share/ftpsd/empty
fi
rc=0
env -i PATH="$FAKE_BIN:/usr/sbin:/usr/bin:/sbin:/bin" FAKE_LOG="$FAKE_LOG" \
    FAKE_USER="$FAKE_USER" FAKE_GROUP="$FAKE_GROUP" FAKE_OWNED="$FAKE_OWNED" \
    DPKG_MAINTSCRIPT_PACKAGE=ftpsd \
    DPKG_MAINTSCRIPT_NAME="$(basename "$1")" /bin/sh "$@" || rc=$?
stat -c 'empty %U:%G %a' /usr/share/ftpsd/empty >> "$FAKE_LOG" 2>/dev/null || \
    echo "empty missing" >> "$FAKE_LOG"
if [ -f /etc/ftpusers ]; then
    echo "ftpusers $(stat -c %a /etc/ftpusers) $(md5sum < /etc/ftpusers | cut -c1-32)"
else
    echo "ftpusers missing"
fi >> "$FAKE_LOG"
if [ -d /var/log/ftpsd ]; then
    echo "logdir $(stat -c '%U:%G %a' /var/log/ftpsd)$(ls /var/log/ftpsd | sed 's/^/ /' | tr -d '\n')"
else
    echo "logdir missing"
fi >> "$FAKE_LOG"
exit $rc
"""


@pytest.fixture(scope="session")
def fake(deb):
    probe = run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 "mount -t tmpfs tmpfs /mnt && mkdir /mnt/u /mnt/w && mount -t overlay overlay "
                 "-o lowerdir=/etc,upperdir=/mnt/u,workdir=/mnt/w /etc"])
    if not shutil.which("unshare") or probe.returncode != 0:
        pytest.skip("no private mount namespace (unshare --mount) to run maintainer scripts "
                    f"in safely: {probe.stderr.strip()}")
    bindir = deb.top / "fakebin"
    bindir.mkdir(exist_ok=True)
    for name in ("adduser", "addgroup", "useradd", "groupadd", "deluser", "delgroup", "userdel",
                 "groupdel", "getent", "deb-systemd-helper", "deb-systemd-invoke", "systemctl",
                 "dpkg-query"):
        p = bindir / name
        p.write_text(FAKE)
        p.chmod(0o755)
    counter = iter(range(1000))

    def runscript(script, *args, user=False, group=False, pre_empty="", ftpusers="",
                  owned=False, logdir=""):
        log = deb.top / f"fake-{next(counter)}.log"
        log.write_text("")
        template = deb.root / "usr/share/ftpsd/ftpusers"
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "FAKE_BIN": str(bindir),
               "FAKE_LOG": str(log), "FAKE_USER": "1" if user else "0",
               "FAKE_GROUP": "1" if group else "0", "PRE_EMPTY": pre_empty,
               "PRE_FTPUSERS": ftpusers, "FAKE_OWNED": "1" if owned else "0",
               "PRE_LOGDIR": logdir,
               "TEMPLATE": str(template) if script != "postrm" else ""}
        r = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", NAMESPACE, "ns",
                 str(deb.ctl / script)] + list(args), env=env, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return log.read_text().splitlines()

    return runscript


def calls(log, cmd):
    return [l for l in log if l.split()[0] == cmd]


def assert_nothing_enabled_or_started(log):
    assert not calls(log, "deb-systemd-invoke"), log
    assert not [l for l in calls(log, "deb-systemd-helper") if " enable" in l], log
    assert [l for l in calls(log, "systemctl") if "daemon-reload" not in l] == [], log


def test_postinst_fresh_install(fake):
    log = fake("postinst", "configure")
    assert calls(log, "adduser") == [
        "adduser --system --quiet --group --no-create-home --home /nonexistent "
        "--shell /usr/sbin/nologin ftpsd"], log
    assert "empty root:root 755" in log
    assert_nothing_enabled_or_started(log)
    # the sockets are registered with deb-systemd-helper (so purge can clean up), not enabled
    assert any("update-state 'ftpsd.socket'" in l or "update-state ftpsd.socket" in l
               for l in log), log


def shipped_ftpusers():
    with open(os.path.join(ROOT, "contrib", "ftpusers"), "rb") as fh:
        return fh.read()


def test_postinst_creates_ftpusers(fake):
    """pam.d/ftpsd refuses the users of /etc/ftpusers, which no package of ours owns: the
    first configure creates it (mode 644, the shipped list) where it is missing."""
    log = fake("postinst", "configure")
    assert f"ftpusers 644 {hashlib.md5(shipped_ftpusers()).hexdigest()}" in log, log


def test_postinst_keeps_existing_ftpusers(fake):
    theirs = "# pure-ftpd's\nroot\nproxy\n"
    log = fake("postinst", "configure", ftpusers=theirs)
    assert f"ftpusers 644 {hashlib.md5(theirs.encode()).hexdigest()}" in log, log
    # an admin who deleted the list keeps it deleted on upgrade
    log = fake("postinst", "configure", "0.1.0-1", user=True, group=True)
    assert "ftpusers missing" in log, log


def test_postrm_purge_ftpusers(fake):
    """Purge removes the list postinst created, not an edited one nor one a package (vsftpd,
    proftpd-core ship the same bytes) has taken over."""
    ours = shipped_ftpusers().decode()
    assert "ftpusers missing" in fake("postrm", "purge", ftpusers=ours)
    log = fake("postrm", "purge", ftpusers=ours, owned=True)
    assert f"ftpusers 644 {hashlib.md5(ours.encode()).hexdigest()}" in log, log
    log = fake("postrm", "purge", ftpusers=ours + "ftp\n")
    assert not [l for l in log if l == "ftpusers missing"], log
    assert "ftpusers missing" not in fake("postrm", "remove", ftpusers=ours)


def test_postrm_knows_the_shipped_list():
    """postrm purge recognises the list postinst created by its md5sum (the package's copy
    is gone by then): it must be contrib/ftpusers's."""
    postrm = open(os.path.join(ROOT, "contrib", "debian", "ftpsd.postrm")).read()
    assert f'"{hashlib.md5(shipped_ftpusers()).hexdigest()}  -"' in postrm


def test_postinst_creates_log_dir(fake):
    """The transfer log's directory (the logrotate file's): root:adm 0750 where missing, on a
    first install and on an upgrade alike; one an admin changed keeps its mode and logs."""
    assert "logdir root:adm 750" in fake("postinst", "configure"), "fresh install"
    log = fake("postinst", "configure", "0.1.0-1", user=True, group=True)
    assert "logdir root:adm 750" in log, log
    log = fake("postinst", "configure", "0.1.0-1", user=True, group=True, logdir="700")
    assert "logdir root:root 700 xferlog.1" in log, log


def test_postrm_purge_removes_logs(fake):
    """Transfer logs go on purge (Debian policy 10.8), not on removal."""
    log = fake("postrm", "remove", logdir="750")
    assert "logdir root:root 750 xferlog.1" in log, log
    assert "logdir missing" in fake("postrm", "purge", logdir="750")


def test_postinst_existing_group(fake):
    log = fake("postinst", "configure", group=True)
    assert calls(log, "adduser") == [
        "adduser --system --quiet --ingroup ftpsd --no-create-home --home /nonexistent "
        "--shell /usr/sbin/nologin ftpsd"], log


def test_postinst_upgrade_repairs_empty_dir(fake):
    log = fake("postinst", "configure", "0.0.9-1", user=True, group=True, pre_empty="1777")
    assert not calls(log, "adduser"), log
    assert "empty root:root 755" in log
    assert_nothing_enabled_or_started(log)
    assert "systemctl --system daemon-reload" in log


def test_prerm_stops_sockets_on_remove_only(fake):
    log = fake("prerm", "remove")
    assert calls(log, "deb-systemd-invoke") == [
        "deb-systemd-invoke stop ftpsd.socket ftpsd-implicit.socket"], log
    log = fake("prerm", "upgrade", "0.1.1-1")
    assert not calls(log, "deb-systemd-invoke"), log


def test_postrm_purge_keeps_the_user(fake):
    log = fake("postrm", "purge", user=True, group=True)
    for cmd in ("deluser", "delgroup", "userdel", "groupdel"):
        assert not calls(log, cmd), log
    assert any(l.startswith("deb-systemd-helper purge") for l in log), log


# --- the installed files at work ------------------------------------------------------------

def test_units_verify(deb, tmp_path):
    """systemd-analyze verify on the packaged units, ExecStart pointed at the extracted
    binary and man pages looked up in the extracted tree."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    binary = str(deb.root / "usr/sbin/ftpsd")
    for u in os.listdir(deb.units):
        (tmp_path / u).write_text((deb.units / u).read_text().replace("/usr/sbin/ftpsd", binary))
    r = run(["systemd-analyze", "verify"] + sorted(str(p) for p in tmp_path.iterdir()),
            env={**os.environ, "MANPATH": str(deb.root / "usr/share/man")})
    print(r.stdout + r.stderr)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def shipped_config(deb):
    conf = {}
    for line in (deb.root / "etc/ftpsd.conf").read_text().splitlines():
        m = re.match(r"\s*([a-z0-9_]+)\s*=\s*(.*?)\s*$", line)
        if m and not line.lstrip().startswith("#"):
            conf[m.group(1)] = m.group(2)
    return conf


def test_shipped_config_checks(deb, env):
    """ftpsd -t of the installed binary on the installed ftpsd.conf, with only the certificate,
    key, unprivileged user and empty dir pointed at the test fixtures."""
    text = (deb.root / "etc/ftpsd.conf").read_text()
    text = re.sub(r"^tls_cert_file\s*=.*$", f"tls_cert_file = {env.cert}", text, flags=re.M)
    text = re.sub(r"^tls_key_file\s*=.*$", f"tls_key_file = {env.key}", text, flags=re.M)
    text += f"nopriv_user = {NOPRIV[0]}\nempty_dir = {deb.root / 'usr/share/ftpsd/empty'}\n"
    path = deb.top / "ftpsd.conf"
    path.write_text(text)
    r = run([str(deb.root / "usr/sbin/ftpsd"), "-t", "-f", str(path)],
            env=wrapper_env(env))
    assert r.returncode == 0 and "configuration OK" in r.stdout + r.stderr, r.stdout + r.stderr


def test_shipped_config_is_read_only(deb, env):
    """The /etc/ftpsd.conf every install gets serves home directories read-only, the
    default ftpsd.conf(5) and README promise (uploads are the admin's choice)."""
    conf = shipped_config(deb)
    assert conf.get("write_enable", "no") == "no"
    example = open(os.path.join(ROOT, "contrib", "ftpsd.conf.example")).read()
    assert re.search(r"^write_enable = no$", example, re.M)
    conf.update(tls_cert_file=env.cert, tls_key_file=env.key, nopriv_user=NOPRIV[0],
                empty_dir=str(deb.root / "usr/share/ftpsd/empty"))
    srv = Server(env, name="package-ro", binary=str(deb.root / "usr/sbin/ftpsd"), **conf)
    try:
        f = srv.ftps_reuse("alice")
        with pytest.raises(ftplib.error_perm, match="^550"):
            f.storbinary("STOR refused.bin", io.BytesIO(b"x"))
        f.quit()
        assert not os.path.exists(os.path.join(env.home("alice"), "refused.bin"))
    finally:
        srv.stop()


def test_installed_binary_serves_a_session(deb, env):
    """One FTPS session through the extracted /usr/sbin/ftpsd, configured like the extracted
    /etc/ftpsd.conf (TLS required, session reuse required, chroot) with uploads turned on:
    login, upload, download."""
    conf = shipped_config(deb)
    assert conf["require_session_reuse"] == "yes" and conf["chroot"] == "yes"
    conf.update(tls_cert_file=env.cert, tls_key_file=env.key, nopriv_user=NOPRIV[0],
                empty_dir=str(deb.root / "usr/share/ftpsd/empty"), write_enable="yes")
    srv = Server(env, name="package", binary=str(deb.root / "usr/sbin/ftpsd"), **conf)
    try:
        f = srv.ftps_reuse("alice")
        assert f.pwd() == "/"
        payload = os.urandom(200000) + b"packaged\r\n"
        f.storbinary("STOR from-package.bin", io.BytesIO(payload))
        out = io.BytesIO()
        f.retrbinary("RETR from-package.bin", out.write)
        assert out.getvalue() == payload
        f.quit()
        st = os.stat(os.path.join(env.home("alice"), "from-package.bin"))
        assert st.st_uid == USERS["alice"][0]
        assert stat.S_IMODE(st.st_mode) == 0o644  # umask = 022 of the shipped config
    finally:
        srv.stop()
        try:
            os.unlink(os.path.join(env.home("alice"), "from-package.bin"))
        except OSError:
            pass
