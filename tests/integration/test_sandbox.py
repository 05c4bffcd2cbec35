"""The sandbox (issue 5): seccomp filters in every unprivileged process, a worker killed for a
forbidden call costs one transfer, Landlock, resource limits, and the filters hold for every
TLS version, cipher suite, PROT level, TYPE and data path the defaults allow."""
import io
import os
import re
import socket
import ssl
import subprocess
import time

import pytest

from ftpsd_fixture import HOOKS_BINARY, NOPRIV, USERS, ReusingFTP_TLS
from test_processes import data_worker, session_processes, status


def limits(pid):
    out = {}
    with open(f"/proc/{pid}/limits") as fh:
        for line in fh.readlines()[1:]:
            name = line[:26].strip()
            out[name] = line[26:47].strip()
    return out


def login(s, user="alice"):
    r = s.raw()
    assert r.reply()[0] == 220
    r.starttls(s.env.cert)
    r.login(user)
    assert r.cmd("PBSZ 0")[0] == 200
    assert r.cmd("PROT P")[0] == 200
    return r


def test_every_unprivileged_process_is_filtered(make_server):
    s = make_server(max_file_size=10**9)
    r = login(s)
    mon, front, user = session_processes(s, USERS["alice"][0])
    code, lines = r.cmd("EPSV")
    data = socket.create_connection((s.host, int(re.search(r"\|(\d+)\|", lines[0]).group(1))))
    workers = [data_worker(front)]
    for pid, filters in ((front, 1), (user, 1), (workers[0], 2)):
        st = status(pid)
        assert st["Seccomp"] == "2", (pid, st["Seccomp"])
        assert int(st["Seccomp_filters"]) == filters
        assert st["NoNewPrivs"] == "1"
        for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(st[k], 16) == 0, (pid, k)
    # The monitor runs PAM modules, which may do anything: it is not filtered, but it never
    # reads client bytes (test_processes.py).
    assert status(mon)["Seccomp"] == "0"
    for pid in (user, workers[0]):
        lim = limits(pid)
        assert lim["Max processes"] == "0"
        assert lim["Max core file size"] == "0"
        assert lim["Max open files"] == "256"
    # The front holds each upload's descriptor before its worker: bound as the worker is. The
    # user process writes only listings, which max_file_size must not cut.
    assert limits(workers[0])["Max file size"] == str(10**9)
    assert limits(front)["Max file size"] == str(10**9)
    assert limits(user)["Max file size"] == "unlimited"
    assert limits(front)["Max open files"] == "256"
    data.close()
    r.close()


@pytest.fixture
def hooks_server(make_server):
    if not os.path.exists(HOOKS_BINARY):
        pytest.skip("build/ftpsd-testhooks is built by make check")

    def make(**conf):
        return make_server(binary=HOOKS_BINARY, **conf)
    return make


def retr(r, name):
    code, lines = r.cmd("EPSV")
    assert code == 229
    r.send(f"RETR {name}\r\n")
    d = r.data_connect(lines)
    first = r.reply()
    data = r.read_all(d)
    if first[0] != 150:
        return first, None, data
    return first, r.reply(), data


def put(s, name, data, user="alice"):
    p = os.path.join(s.env.home(user), name)
    with open(p, "wb") as fh:
        fh.write(data)
    os.chown(p, USERS[user][0], USERS[user][0])


def test_worker_killed_by_seccomp_costs_one_transfer(hooks_server, syslog):
    s = hooks_server()
    put(s, "victim.bin", b"v" * 100000)
    r = login(s)
    assert r.cmd("XTST WORKER-SYSCALL")[0] == 200
    first, final, data = retr(r, "victim.bin")
    assert first[0] == 150
    assert final[0] == 451 and "sandbox" in final[1][0], final
    assert data == b""
    assert r.cmd("NOOP")[0] == 200                       # the session survives
    first, final, data = retr(r, "victim.bin")
    assert final[0] == 226 and data == b"v" * 100000
    r.close()
    if syslog and syslog.available:
        # KILL_PROCESS leaves only SIGSYS; the monitor names the call from the kernel log.
        assert re.search(r"data worker \(pid \d+\) killed by seccomp: forbidden system call "
                         r"\d+ \(socket\)", syslog.text(wait_for="(socket)")), syslog.text()


def test_trap_mode_names_the_call(hooks_server, syslog):
    s = hooks_server(seccomp="trap")
    put(s, "victim.bin", b"v" * 1000)
    r = login(s)
    r.cmd("XTST WORKER-SYSCALL")
    first, final, data = retr(r, "victim.bin")
    assert final[0] == 451 and "forbidden system call socket" in final[1][0], final
    assert retr(r, "victim.bin")[1][0] == 226
    r.close()
    if syslog and syslog.available:
        assert re.search(r"forbidden system call \d+ \(socket\)",
                         syslog.text(wait_for="(socket)"))


@pytest.mark.parametrize("mode", ["log", "off"])
def test_log_and_off_modes_let_the_call_through(hooks_server, mode):
    s = hooks_server(seccomp=mode)
    put(s, "victim.bin", b"v" * 1000)
    r = login(s)
    r.cmd("XTST WORKER-SYSCALL")
    first, final, data = retr(r, "victim.bin")
    assert final[0] == 226 and data == b"v" * 1000
    if mode == "off":
        mon, front, user = session_processes(s, USERS["alice"][0])
        assert status(front)["Seccomp"] == "0"
    r.close()


@pytest.mark.parametrize("landlock", ["yes", "no"])
def test_landlock_confines_user_process(hooks_server, env, landlock):
    """With chroot = no the user process is confined by openat2 and by Landlock; a plain
    open(2) (the hook) shows what Landlock alone allows."""
    s = hooks_server(chroot="no", root_dir=os.path.join(env.homes, "%u"), landlock=landlock,
                     seccomp="off")
    r = login(s)
    inside = os.path.join(s.env.home("alice"), "inside.txt")
    put(s, "inside.txt", b"in")
    assert r.cmd(f"XTST OPEN {inside}")[0] == 200
    code, lines = r.cmd("XTST OPEN /etc/hostname")
    if landlock == "yes":
        assert code == 550 and "Permission denied" in lines[0], lines
    else:
        assert code == 200
    r.close()


def test_file_size_limit(make_server):
    s = make_server(max_file_size=100000)
    f = s.ftps_reuse("alice")
    with pytest.raises(Exception, match="552"):
        f.storbinary("STOR big.bin", io.BytesIO(b"x" * 300000))
    f.storbinary("STOR small.bin", io.BytesIO(b"x" * 1000))
    assert not os.path.exists(os.path.join(s.env.home("alice"), "big.bin"))
    # A listing larger than max_file_size is not a file: it is sent whole.
    d = os.path.join(s.env.home("alice"), "many")
    os.mkdir(d)
    for i in range(3000):
        open(os.path.join(d, f"file-with-a-long-name-{i:05d}.txt"), "w").close()
    lines = []
    f.retrlines("LIST many", lines.append)
    assert len(lines) == 3000 and sum(len(l) + 2 for l in lines) > 100000
    f.quit()


# --- every cipher suite the defaults allow, under the filters -------------------------------

TLS13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
TLS12_EC = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-CHACHA20-POLY1305"]
TLS12_RSA = ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
             "ECDHE-RSA-CHACHA20-POLY1305"]


@pytest.fixture(scope="module")
def rsa_cert(env):
    cert, key = env.path("rsa.pem"), env.path("rsa.key")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert], check=True,
                       capture_output=True)
    return cert, key


def exercise(s, cafile, version, cipher=None):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    ctx.minimum_version = ctx.maximum_version = version
    if cipher:
        ctx.set_ciphers(cipher)
    f = ReusingFTP_TLS(context=ctx, timeout=20)
    f.connect(s.host, s.port)
    f.login("alice", USERS["alice"][1])
    # A directory of its own: other tests leave names that are not UTF-8 in the home.
    sub = f"cipher-{os.getpid()}-{time.time_ns()}"
    f.mkd(sub)
    f.cwd(sub)
    data = os.urandom(700000)
    text = b"line one\nline two\r\nthird\n" * 2000
    for prot in ("P", "C"):
        f.prot_p() if prot == "P" else f.prot_c()
        assert f.sock.cipher()[0] == (cipher or f.sock.cipher()[0])
        f.storbinary("STOR bin", io.BytesIO(data))
        out = io.BytesIO()
        f.retrbinary("RETR bin", out.write)                    # TLS or sendfile path
        assert out.getvalue() == data
        f.storbinary("STOR txt", io.BytesIO(text))
        lines = []
        f.retrlines("RETR txt", lines.append)                  # TYPE A
        assert len(lines) == 6000
        assert len(list(f.mlsd())) >= 3
        f.storlines("STOR txt2", io.BytesIO(b"a\r\nb\r\n"))
        assert open(os.path.join(s.env.home("alice"), sub, "txt2"), "rb").read() == b"a\nb\n"
    f.quit()


@pytest.mark.parametrize("suite", TLS13)
def test_tls13_suites_under_seccomp(make_server, suite):
    s = make_server(tls_ciphersuites=suite, tls_min_version="1.3", require_prot_p="no")
    exercise(s, s.env.cert, ssl.TLSVersion.TLSv1_3)


@pytest.mark.parametrize("cipher", TLS12_EC)
def test_tls12_ecdsa_ciphers_under_seccomp(make_server, cipher):
    s = make_server(require_prot_p="no")
    exercise(s, s.env.cert, ssl.TLSVersion.TLSv1_2, cipher)


@pytest.mark.parametrize("cipher", TLS12_RSA)
def test_tls12_rsa_ciphers_under_seccomp(make_server, rsa_cert, cipher):
    s = make_server(tls_cert_file=rsa_cert[0], tls_key_file=rsa_cert[1], require_prot_p="no")
    exercise(s, rsa_cert[0], ssl.TLSVersion.TLSv1_2, cipher)


def kernel_offers_ktls():
    """The same question ftpsd asks (ktls.c): ENOTCONN once the "tls" ULP is found."""
    import errno
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_TCP, 31, b"tls\0")   # TCP_ULP
    except OSError as e:
        return e.errno == errno.ENOTCONN
    finally:
        sock.close()
    return True


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_kernel_tls_attempt_under_seccomp(hooks_server, version):
    """XTST KTLS: data workers set SSL_OP_ENABLE_KTLS whatever the kernel offers. OpenSSL then
    attaches the "tls" ULP (setsockopt TCP_ULP, which the worker's filter allows) and hands the
    keys over (SOL_TLS), or, on a kernel without kernel TLS (this one, if kernel_offers_ktls()
    is false), falls back to its own record layer. Either way downloads (also after REST) and
    uploads arrive whole with seccomp on."""
    s = hooks_server()
    ctx = ssl.create_default_context(cafile=s.env.cert)
    ctx.minimum_version = ctx.maximum_version = version
    f = ReusingFTP_TLS(context=ctx, timeout=20)
    f.connect(s.host, s.port)
    f.login("alice", USERS["alice"][1])
    f.prot_p()
    assert f.sendcmd("XTST KTLS").startswith("200")
    # A directory of its own: other tests leave names that are not UTF-8 in the home.
    sub = f"ktls-{version.name}-{os.getpid()}-{time.time_ns()}"
    f.mkd(sub)
    f.cwd(sub)
    name = "k.bin"
    data = os.urandom(3 * 1024 * 1024 + 12345)
    f.storbinary(f"STOR {name}", io.BytesIO(data))
    with open(os.path.join(s.env.home("alice"), sub, name), "rb") as fh:
        assert fh.read() == data
    out = io.BytesIO()
    f.retrbinary(f"RETR {name}", out.write)
    assert out.getvalue() == data
    out = io.BytesIO()
    f.retrbinary(f"RETR {name}", out.write, rest=1000001)
    assert out.getvalue() == data[1000001:]
    lines = []
    f.retrlines("LIST", lines.append)
    assert any(name in ln for ln in lines)
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()
