"""Logging (issue 6): journald structured fields, the xferlog(5) file, and the fail2ban filter
checked against the lines the server really writes."""
import io
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from ftpsd_fixture import USERS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOURNAL = "/run/systemd/journal/socket"


@pytest.fixture
def fake_journal():
    """A datagram socket where journald's would be (no systemd runs here)."""
    if os.path.exists(JOURNAL):
        pytest.skip("a real journald socket exists; not replacing it")
    os.makedirs(os.path.dirname(JOURNAL), exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(JOURNAL)
    s.settimeout(0.2)
    yield s
    s.close()
    os.unlink(JOURNAL)


def records(sock, until, timeout=5):
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            data = sock.recv(65536).decode("utf-8", "replace")
        except socket.timeout:
            if until(out):
                break
            continue
        rec = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
        out.append(rec)
    return out


def test_journald_structured_fields(make_server, fake_journal):
    s = make_server()
    name = f"j-{os.getpid()}-{time.time_ns()}.txt"
    f = s.ftps_reuse("alice")
    f.storbinary(f"STOR {name}", io.BytesIO(b"journal"))
    f.quit()
    # Other ftpsd sessions on this machine (benchmarks, a second test run) may log here too:
    # this test's session is the one that stored this file.
    def session_of(recs):
        return {r.get("FTPSD_SESSION") for r in recs if f'STOR "/{name}"' in r.get("MESSAGE", "")}

    def ended(recs):
        return any(r.get("FTPSD_SESSION") in session_of(recs) and "disconnect" in r["MESSAGE"]
                   for r in recs)

    recs = records(fake_journal, ended)
    assert recs, "nothing reached the journal socket"
    mine = session_of(recs)
    assert len(mine) == 1, recs
    recs = [r for r in recs if r.get("FTPSD_SESSION") in mine]
    assert any("disconnect" in r["MESSAGE"] for r in recs), recs
    for r in recs:
        assert r["SYSLOG_IDENTIFIER"] == "ftpsd" and r["FTPSD_CLIENT"] == "127.0.0.1"
        assert r["PRIORITY"].isdigit() and r["SYSLOG_PID"].isdigit()
        assert r["MESSAGE"].startswith(f"[{r['FTPSD_SESSION']}] 127.0.0.1")
    login = [r for r in recs if "login ok" in r["MESSAGE"]]
    assert login and login[0]["FTPSD_USER"] == "alice" and login[0]["PRIORITY"] == "5"
    xfer = [r for r in recs if f'STOR "/{name}"' in r["MESSAGE"]]
    assert xfer and xfer[0]["FTPSD_PROT"] == "P" and xfer[0]["FTPSD_TLS"].startswith("TLSv1.")
    assert xfer[0]["FTPSD_USER"] == "alice"


def test_failed_login_names_the_user_in_the_journal(make_server, fake_journal):
    """A failed login's record carries FTPSD_USER (the name given), so `journalctl
    FTPSD_USER=alice` shows alice's failed attempts too; the text's prefix does not change
    (fail2ban parses it), and the next record of the session has no user."""
    s = make_server()
    marker = f"wrong-{time.time_ns()}"
    r = s.raw()
    r.reply()
    r.starttls(s.env.cert)
    r.cmd("USER alice")
    assert r.cmd("PASS " + marker)[0] == 530
    r.cmd("QUIT")
    r.close()

    def done(recs):
        return any("login failed user=alice" in x.get("MESSAGE", "") for x in recs) and \
            any("disconnect" in x.get("MESSAGE", "") for x in recs)

    recs = records(fake_journal, done)
    failed = [x for x in recs if "login failed user=alice" in x.get("MESSAGE", "")]
    assert failed and failed[0]["FTPSD_USER"] == "alice", failed
    assert re.match(r"^\[[0-9a-f]+\] 127\.0\.0\.1: login failed", failed[0]["MESSAGE"]), failed
    sid = failed[0]["FTPSD_SESSION"]
    later = [x for x in recs if x.get("FTPSD_SESSION") == sid and "disconnect" in x["MESSAGE"]]
    assert later and "FTPSD_USER" not in later[0], later


def fail2ban_regex(tmp_path, lines):
    """fail2ban-regex's verbose report of the shipped filter on these log lines."""
    log = tmp_path / "ftpsd.log"
    log.write_text("\n".join(lines) + "\n")
    filt = tmp_path / "filter.d"
    filt.mkdir()
    shutil.copy(os.path.join(ROOT, "contrib", "fail2ban", "filter.d", "ftpsd.conf"), filt)
    shutil.copy("/etc/fail2ban/filter.d/common.conf", filt)
    return subprocess.run(["fail2ban-regex", "-v", str(log), str(filt / "ftpsd.conf")],
                          capture_output=True, text=True, timeout=60).stdout


def test_server_side_login_error_is_no_failed_login(make_server, env, syslog, tmp_path):
    """A login the server cannot complete (here: anonymous FTP whose anon_root is missing)
    is logged as a server-side error, which the shipped fail2ban filter does not count: the
    client did nothing wrong. A wrong password in the same log still matches."""
    if not shutil.which("fail2ban-regex"):
        pytest.skip("fail2ban is not installed")
    if not (syslog and syslog.available):
        pytest.skip(syslog.reason if syslog else "no syslog")
    s = make_server(anonymous="yes", anon_root=env.path("no-such-anon-root"))
    before = len(syslog.text())          # the log is the whole run's: only this test's lines
    guesser = f"mallory{time.time_ns()}"
    r = s.raw()
    r.reply()
    r.starttls(s.env.cert)
    r.cmd("USER anonymous")
    code, lines = r.cmd("PASS guest@")
    assert code == 530 and "server authentication error" in lines[-1], lines
    r.cmd("USER " + guesser)
    assert r.cmd("PASS wrong")[0] == 530
    r.close()
    want = "login error (server side) user=anonymous method=anonymous: root directory for"
    syslog.text(wait_for=f"login failed user={guesser}")
    text = syslog.text(wait_for=want)[before:]
    assert want in text, text[-3000:]
    sid = re.search(r"\[([0-9a-f]{12})\] [^ ]+: " + re.escape(want), text).group(1)
    mine = [l for l in text.splitlines() if f"[{sid}]" in l]
    assert sum(f"login failed user={guesser}" in l for l in mine) == 1, mine
    out = fail2ban_regex(tmp_path, mine)
    m = re.search(r"Failregex: (\d+) total", out)
    assert m and int(m.group(1)) == 1, out


def test_xferlog(make_server, env):
    path = env.path("xferlog")
    s = make_server(xferlog_file=path)
    f = s.ftps_reuse("alice")
    f.storbinary("STOR xl one.bin", io.BytesIO(b"x" * 1234))
    f.retrbinary("RETR xl one.bin", io.BytesIO().write)
    f.storlines("STOR xl.txt", io.BytesIO(b"a\nb\n"))
    f.quit()
    deadline = time.time() + 5
    lines = []
    while time.time() < deadline and len(lines) < 3:
        lines = open(path).read().splitlines() if os.path.exists(path) else []
        time.sleep(0.1)
    assert len(lines) == 3, lines
    home = env.home("alice")
    # ctime date (5 fields), then: time host size file type action direction access user
    # service auth-method auth-id status
    expect = [("1234", f"{home}/xl_one.bin", "b", "i"),   # the space became '_'
              ("1234", f"{home}/xl_one.bin", "b", "o"),
              ("4", f"{home}/xl.txt", "a", "i")]
    for line, (size, name, typ, direction) in zip(lines, expect):
        fl = line.split()
        assert len(fl) == 18, fl
        assert re.match(r"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} ", line)
        assert int(fl[5]) >= 1 and fl[6] == "127.0.0.1"
        assert (fl[7], fl[8], fl[9], fl[10], fl[11]) == (size, name, typ, "_", direction)
        assert fl[12:] == ["r", "alice", "ftp", "0", "*", "c"]


def test_fail2ban_filter_matches_real_lines(make_server, syslog, tmp_path):
    if not shutil.which("fail2ban-regex"):
        pytest.skip("fail2ban is not installed")
    if not (syslog and syslog.available):
        pytest.skip(syslog.reason if syslog else "no syslog")
    s = make_server(max_login_failures=3)
    for attempt in range(2):
        r = s.raw()
        r.reply()
        r.starttls(s.env.cert)
        r.cmd("USER mallory 1.2.3.4:")
        assert r.cmd("PASS wrong")[0] == 530
        r.close()
    text = syslog.text(wait_for="user=mallory")
    time.sleep(0.5)
    lines = [l for l in syslog.text().splitlines() if "ftpsd[" in l]
    out = fail2ban_regex(tmp_path, lines)
    failed = sum("login failed user=mallory" in l for l in lines)
    assert failed >= 2
    m = re.search(r"Failregex: (\d+) total", out)
    assert m and int(m.group(1)) >= failed, out
    # Every match is attributed to the real client, never to text the client sent.
    hosts = set(re.findall(r"^\|\s+(\S+)\s+\w{3} \w{3}", out, re.M))
    assert hosts == {"127.0.0.1"}, out


def fail2ban_config(tmp_path, jail_text):
    """A fail2ban configuration directory like the installed one, with ftpsd's filter and the
    given jail as its only jail (nothing in it is started: fail2ban-client -t and -d only read
    the configuration)."""
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf, ignore=lambda d, names: names
                    if os.path.basename(d) == "jail.d" else [])
    shutil.copy(os.path.join(ROOT, "contrib", "fail2ban", "filter.d", "ftpsd.conf"),
                conf / "filter.d")
    (conf / "jail.d" / "ftpsd.conf").write_text(jail_text)
    return conf


def fail2ban_client(conf, *args):
    return subprocess.run(["fail2ban-client", "-c", str(conf), *args], capture_output=True,
                          text=True, timeout=60)


def test_fail2ban_jail_reads_the_journal(tmp_path):
    """The shipped jail reads the journal (Debian 12 has no /var/log/syslog unless rsyslog is
    installed, and fail2ban refuses a jail without its log file); its commented alternative
    for a syslog file is a working configuration too."""
    import configparser
    jail_text = open(os.path.join(ROOT, "contrib", "fail2ban", "jail.d", "ftpsd.conf")).read()
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(jail_text)
    assert cp["ftpsd"]["backend"] == "systemd" and cp["ftpsd"]["filter"] == "ftpsd"
    assert "logpath" not in cp["ftpsd"]
    filt = open(os.path.join(ROOT, "contrib", "fail2ban", "filter.d", "ftpsd.conf")).read()
    assert re.search(r"^journalmatch = SYSLOG_IDENTIFIER=ftpsd$", filt, re.M)
    if not shutil.which("fail2ban-client") or not os.path.isdir("/etc/fail2ban"):
        pytest.skip("fail2ban is not installed")
    conf = fail2ban_config(tmp_path, jail_text)
    r = fail2ban_client(conf, "-t")
    assert r.returncode == 0, r.stdout + r.stderr
    dump = fail2ban_client(conf, "-d").stdout
    assert "['add', 'ftpsd', 'systemd']" in dump, dump
    assert "['set', 'ftpsd', 'addjournalmatch', 'SYSLOG_IDENTIFIER=ftpsd']" in dump, dump
    assert "addlogpath" not in dump, dump

    # The alternative: its lines uncommented in place of the backend line, a log file that
    # exists. With a missing file fail2ban refuses the jail, the failure the journal avoids.
    log = tmp_path / "syslog"
    alt = re.findall(r"^#\s+((?:backend|logpath)\s*=.*)$", jail_text, re.M)
    assert [a.split()[0] for a in alt] == ["backend", "logpath"], alt
    syslog_jail = re.sub(r"^backend\s*=.*$", "\n".join(alt), jail_text, flags=re.M)
    conf = fail2ban_config(tmp_path / "missing", syslog_jail.replace(
        re.search(r"logpath\s*=\s*(\S+)", alt[1]).group(1), str(log)))
    r = fail2ban_client(conf, "-t")
    assert r.returncode != 0 and "Have not found any log file for ftpsd" in r.stderr, r.stderr
    log.write_text("")
    r = fail2ban_client(conf, "-t")
    assert r.returncode == 0, r.stdout + r.stderr
    dump = fail2ban_client(conf, "-d").stdout
    assert "['add', 'ftpsd', 'auto']" in dump and f"'addlogpath', '{log}'" in dump, dump
