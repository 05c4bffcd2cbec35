"""Scale-out (issue 9): two ftpsd hosts behind a real HAProxy (TCP mode, send-proxy-v2), each
with its own passive range forwarded by the balancer; 50 sessions transfer files with sha256
checks under PROT P, every log line names the real client, and a forged header from an
untrusted address is refused."""
import concurrent.futures
import ftplib
import hashlib
import io
import os
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from ftpsd_fixture import USERS, ReusingFTP_TLS, Server

SESSIONS = 50


class Haproxy:
    def __init__(self, env, vip_port, backends):
        self.cfg = env.path(f"haproxy-{vip_port}.cfg")
        # noreuseport: two of its own frontends on one port would share its connections
        # silently; a clash must fail the start instead.
        lines = ["global", "    maxconn 1000", "    noreuseport", "defaults", "    mode tcp",
                 "    timeout connect 5s", "    timeout client 60s", "    timeout server 60s",
                 "frontend ftp", f"    bind 127.0.0.1:{vip_port}", "    default_backend ftpsd",
                 "backend ftpsd", "    balance roundrobin"]
        for name, addr, port, _ in backends:
            lines.append(f"    server {name} {addr}:{port} send-proxy-v2 source 127.0.0.1")
        for name, addr, _, (lo, hi) in backends:
            # This host's passive ports go to this host only.
            lines += [f"frontend pasv_{name}", f"    bind 127.0.0.1:{lo}-{hi}",
                      f"    default_backend pasv_{name}", f"backend pasv_{name}",
                      f"    server {name} {addr} send-proxy-v2 source 127.0.0.1"]
        with open(self.cfg, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", vip_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.proc.terminate()
        raise RuntimeError("haproxy did not start: " + self.proc.stderr.read().decode()[-2000:])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def free_range(count=100):
    """A block of ports outside the fixture's passive range (40000-44999), all free now."""
    import random
    for _ in range(50):
        lo = random.randrange(45000, 59000, 100)
        socks = []
        try:
            for p in range(lo, lo + count):
                s = socket.socket()
                # As haproxy binds: a port whose last connection is in TIME_WAIT is free.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return lo
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


@pytest.fixture(scope="module")
def cluster(env):
    if not shutil.which("haproxy"):
        pytest.skip("haproxy is not installed")
    # The balancer's port comes from the same free block: an ephemeral port from free_port()
    # could fall inside a passive range, and then some sessions reached a passive frontend.
    lo = free_range(101)
    vip = lo + 100
    ranges = {"a": (lo, lo + 49), "b": (lo + 50, lo + 99)}
    servers, lb = {}, None
    try:
        for name, addr in (("a", "127.0.0.2"), ("b", "127.0.0.3")):
            lo, hi = ranges[name]
            servers[name] = Server(env, name=f"scale-{name}", listen=addr, system_pam=True,
                                   proxy_protocol="v2", proxy_trusted="127.0.0.1",
                                   pasv_min_port=lo, pasv_max_port=hi, pasv_address="127.0.0.1")
        lb = Haproxy(env, vip, [(n, s.host, s.port, ranges[n]) for n, s in servers.items()])
        yield vip, servers
    finally:
        # Also when a server or the balancer failed to start: none outlives the run.
        if lb:
            lb.stop()
        for s in servers.values():
            s.stop()


def one_session(env, vip, i):
    """A client from its own address (127.0.1.i): login, upload, download, compare."""
    src = f"127.0.1.{i + 1}"
    ctx = ssl.create_default_context(cafile=env.cert)
    ctx.check_hostname = False
    f = ReusingFTP_TLS(context=ctx, timeout=30, source_address=(src, 0))
    f.connect("127.0.0.1", vip)
    user = ("alice", "bob", "carol")[i % 3]
    f.login(user, USERS[user][1])
    f.prot_p()
    data = os.urandom(200_000 + i * 997)
    name = f"scale-{os.getpid()}-{i}.bin"
    f.storbinary(f"STOR {name}", io.BytesIO(data))
    out = io.BytesIO()
    f.retrbinary(f"RETR {name}", out.write)
    f.delete(name)
    f.quit()
    return src, hashlib.sha256(out.getvalue()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_sessions_through_haproxy(cluster, env, syslog):
    vip, servers = cluster
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda i: one_session(env, vip, i), range(SESSIONS)))
    elapsed = time.time() - started
    assert all(ok for _, ok in results)
    assert len(results) == SESSIONS
    print(f"\n{SESSIONS} sessions through HAProxy in {elapsed:.1f} s")
    if not (syslog and syslog.available):
        return
    # The log file is the whole run's: a wait for "disconnect" ended at once on an earlier
    # test's line, and a fixed second then had to cover rsyslog's lag. Wait for these lines.
    def logged():
        text = syslog.text()
        lines = [l for l in text.splitlines() if "ftpsd" in l and "] 127.0.1." in l]
        sessions = {re.search(r"\[([0-9a-f]{12})\]", l).group(1) for l in lines}
        stored = re.findall(r'STOR "/scale-[^"]+" bytes=\d+ .* prot=P', text)
        ended = {re.search(r"\[([0-9a-f]{12})\]", l).group(1) for l in lines if "disconnect" in l}
        return text, sessions, stored, ended

    deadline = time.time() + 20
    text, sessions, stored, ended = logged()
    while ((len(sessions) < SESSIONS or len(stored) < SESSIONS or ended < sessions)
           and time.time() < deadline):
        time.sleep(0.2)
        text, sessions, stored, ended = logged()
    assert len(sessions) >= SESSIONS
    # Every line of those sessions names the real client, never the balancer.
    for sid in sessions:
        for l in text.splitlines():
            if f"[{sid}]" in l:
                assert re.search(rf"\[{sid}\] 127\.0\.1\.\d+", l), l
    # Both hosts served sessions, with transfers logged under PROT P.
    assert len(stored) >= SESSIONS


def test_pasv_reply_names_the_balancer(cluster, env):
    vip, servers = cluster
    ctx = ssl.create_default_context(cafile=env.cert)
    ctx.check_hostname = False
    f = ftplib.FTP_TLS(context=ctx, timeout=20, source_address=("127.0.1.200", 0))
    f.connect("127.0.0.1", vip)
    f.login("alice", USERS["alice"][1])
    resp = f.sendcmd("PASV")
    nums = [int(x) for x in re.search(r"\((\d+(?:,\d+){5})\)", resp).group(1).split(",")]
    assert nums[:4] == [127, 0, 0, 1]
    port = nums[4] * 256 + nums[5]
    assert any(s.conf_path and lo <= port <= hi for s, (lo, hi) in zip(
        servers.values(), [(int(re.search(r"pasv_min_port = (\d+)", open(s.conf_path).read()).group(1)),
                            int(re.search(r"pasv_max_port = (\d+)", open(s.conf_path).read()).group(1)))
                           for s in servers.values()]))
    f.quit()


def test_forged_header_from_untrusted_address_is_refused(cluster, syslog):
    vip, servers = cluster
    s = servers["a"]
    sock = socket.create_connection((s.host, s.port), timeout=10, source_address=("127.0.0.9", 0))
    header = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + socket.inet_aton("198.51.100.1") +
              socket.inet_aton("127.0.0.2") + b"\x30\x39\x00\x15")
    sock.sendall(header)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    assert data == b""                       # closed, no greeting
    sock.close()
    if syslog and syslog.available:
        assert "127.0.0.9, which is not in proxy_trusted" in syslog.text(wait_for="127.0.0.9")


def test_malformed_header_from_trusted_address(cluster):
    vip, servers = cluster
    s = servers["b"]
    for junk in (b"PROXY TCP4 1.2.3.4\r\n", b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff",
                 b"GET / HTTP/1.0\r\n\r\n"):
        sock = socket.create_connection((s.host, s.port), timeout=10,
                                        source_address=("127.0.0.1", 0))
        sock.sendall(junk)
        data = b""
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        assert data == b"", junk
        sock.close()
