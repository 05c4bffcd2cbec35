"""Reliability under load (issue "Reliability"): 300 concurrent FTPS sessions on one server, each
logging in, uploading and downloading under PROT P with resumed data sessions, all held open at
the same moment; afterwards every process of those sessions is gone. Slow clients that trickle
one byte per 50 ms on their data connections do not hold up the sessions running beside them.

The servers here run with system_pam=True (the system libpam loads pam_matrix from a temporary
/etc/pam.d service; users still come from nss_wrapper): pam_wrapper's per-process configuration
directories cannot hold hundreds of concurrent logins."""
import hashlib
import io
import os
import resource
import shutil
import socket
import threading
import time

import pytest

from ftpsd_fixture import NOPRIV, USERS
from reliability import (RUN, alive, all_stats, children, count, descendants, epsv_port,
                         make_user_dir, proc_uid, report, say, wait_until)

pytestmark = pytest.mark.skipif(not os.path.isdir("/etc/pam.d"),
                                reason="system_pam servers need /etc/pam.d")

CYCLE = ["alice", "bob", "carol"]
SESSIONS = 300
# A passive range of its own, away from the fixture's 40000-44999 used by other servers.
PASV = {"pasv_min_port": 45000, "pasv_max_port": 47999}


def sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.fixture(scope="module", autouse=True)
def summary(request):
    yield
    report(request, "test_load.py", ["sessions held", "sessions completed", "slow clients",
                                     "normal sessions beside slow ones"])


@pytest.fixture
def run_dirs(env):
    """load_<RUN>_<n> in every user's home; removed afterwards."""
    made = []

    def make(tag):
        name = f"load_{RUN}_{tag}"
        for u in CYCLE:
            made.append(make_user_dir(env, u, name))
        return name
    yield make
    for p in made:
        shutil.rmtree(p, ignore_errors=True)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    new = need if hard == resource.RLIM_INFINITY else min(need, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    assert new >= need, f"RLIMIT_NOFILE hard limit {hard} is below the {need} this test needs"


def roundtrip(f, env, user, name, data):
    """STOR then RETR of data under name (relative to the cwd); checks both ends by sha256."""
    f.storbinary(f"STOR {name}", io.BytesIO(data))
    out = io.BytesIO()
    f.retrbinary(f"RETR {name}", out.write)
    assert sha(out.getvalue()) == sha(data), f"{user}: downloaded bytes differ"


def test_300_concurrent_sessions(make_server, env, run_dirs, request):
    """300 sessions (alice, bob, carol in turn) log in; when all 300 are logged in at the same
    moment (each with its monitor, front and user process), each uploads and downloads a small
    random file under PROT P with resumed data sessions (sha256 on both ends) and quits. All
    must succeed, and afterwards no process of any of them is left."""
    raise_nofile(4 * SESSIONS + 256)
    s = make_server(name="load", system_pam=True, **PASV, max_sessions_per_user=0,
                    log_level="info", data_timeout=120, idle_timeout=300, login_timeout=120)
    d = run_dirs("300")
    held = {}
    barrier_snapshot = {}

    def at_barrier():
        # Every thread has logged in and waits here: all 300 sessions are open now.
        try:
            count_held()
        except Exception as e:  # noqa: BLE001 - a broken barrier would hide it
            errors["barrier"] = f"counting the sessions failed: {type(e).__name__}: {e}"
            raise

    def count_held():
        stats = all_stats()
        mons = children(s.proc.pid, stats)
        users = fronts = 0
        for m in mons:
            for k in children(m, stats):
                uid = proc_uid(k)
                fronts += uid == NOPRIV[1]
                users += uid in (u[0] for u in USERS.values())
        held.update(monitors=len(mons), fronts=fronts, users=users)
        barrier_snapshot.update(descendants(s.proc.pid))

    barrier = threading.Barrier(SESSIONS, action=at_barrier, timeout=180)
    errors = {}
    done = []
    times = {}

    def session(i):
        user = CYCLE[i % 3]
        t0 = time.monotonic()
        f = None
        phase = "login"
        try:
            f = s.ftps_reuse(user, timeout=120)
            times.setdefault("login", []).append(time.monotonic() - t0)
            phase = "waiting for the others"
            barrier.wait()
            phase = "transfer"
            t1 = time.monotonic()
            f.cwd(d)
            data = os.urandom(16384 + (i * 7919) % 32768)
            name = f"s{i:03d}.bin"
            roundtrip(f, env, user, name, data)
            with open(os.path.join(env.home(user), d, name), "rb") as fh:
                assert sha(fh.read()) == sha(data), "stored bytes differ"
            assert f.quit().startswith("221")
            times.setdefault("transfer", []).append(time.monotonic() - t1)
            done.append(i)
        except BaseException as e:  # noqa: BLE001 - reported below with the session number
            errors[i] = f"{user} during {phase}: {type(e).__name__}: {e}"
            barrier.abort()
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    # Every process the server starts (data workers too) is recorded while the sessions run.
    seen = {}
    sampling = threading.Event()

    def sampler():
        while not sampling.is_set():
            seen.update(descendants(s.proc.pid))
            sampling.wait(0.2)

    sampler_thread = threading.Thread(target=sampler, daemon=True)
    sampler_thread.start()
    t0 = time.monotonic()
    threads = [threading.Thread(target=session, args=(i,), daemon=True) for i in range(SESSIONS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 240
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    elapsed = time.monotonic() - t0
    sampling.set()
    sampler_thread.join(10)
    hung = [i for i, t in enumerate(threads) if t.is_alive()]
    assert not hung, f"{len(hung)} sessions still running after 240 s"
    first = [errors["barrier"]] if "barrier" in errors else sorted(errors.items())[:5]
    assert not errors, f"{len(errors)} of {SESSIONS} sessions failed, e.g. {first}"
    assert len(done) == SESSIONS
    count("sessions completed", len(done))
    # All 300 were logged in at the same moment, each with its monitor, front and user process.
    assert held == {"monitors": SESSIONS, "fronts": SESSIONS, "users": SESSIONS}, held
    count("sessions held", held["monitors"])
    # Afterwards nothing of those sessions is left: the server's children are reaped, and no
    # process of the snapshot survives elsewhere (reparented orphans).
    assert wait_until(lambda: children(s.proc.pid) == [], 30), \
        f"still running after all sessions quit: {children(s.proc.pid)}"
    seen.update(barrier_snapshot)
    left = alive(seen)
    assert not left, f"session processes outlived their sessions: {left}"
    workers = sum(1 for p in seen if p not in barrier_snapshot)
    say(request, f"{SESSIONS} concurrent sessions: {elapsed:.1f} s in all, slowest login "
        f"{max(times['login']):.1f} s, slowest transfer phase {max(times['transfer']):.1f} s; "
        f"{len(seen)} session processes seen ({len(barrier_snapshot)} at the barrier, {workers} "
        f"sampled data workers and others), none left")


# --- slow clients ---------------------------------------------------------------------------

TRICKLE = 0.05      # one byte per 50 ms
MIN_TRICKLE = 2.0   # for at least 2 s
NORMAL = 20


class SlowDownload(threading.Thread):
    """RETR of a large file, read one byte per 50 ms with a small receive buffer until told to
    stop (at least MIN_TRICKLE s), then the rest at full speed; checks every byte."""

    def __init__(self, server, user, path, data, stop):
        super().__init__(daemon=True)
        self.s, self.user, self.path, self.data, self.stop = server, user, path, data, stop
        self.trickling = threading.Event()
        self.error = None
        self.result = None

    def run(self):
        try:
            r = self.s.tls_raw(self.user, prot=True, timeout=30)
            assert r.cmd("TYPE I")[0] == 200
            code, lines = r.cmd("EPSV")
            assert code == 229
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.settimeout(30)
            raw.connect((self.s.host, epsv_port(lines)))
            r.send(f"RETR {self.path}\r\n")
            d = r.ctx.wrap_socket(raw, server_hostname="localhost", session=r.sock.session)
            assert r.reply()[0] == 150
            got = bytearray()
            t0 = time.monotonic()
            self.trickling.set()
            while not (self.stop.is_set() and time.monotonic() - t0 >= MIN_TRICKLE):
                b = d.recv(1)
                assert b, "download ended early"
                got += b
                time.sleep(TRICKLE)
            self.trickle_secs = time.monotonic() - t0
            self.trickled = len(got)
            while True:
                b = d.recv(65536)
                if not b:
                    break
                got += b
            d.unwrap()
            d.close()
            self.result = r.reply()
            assert sha(bytes(got)) == sha(self.data), "slow download: bytes differ"
            assert r.cmd("QUIT")[0] == 221
            r.close()
        except BaseException as e:  # noqa: BLE001
            self.error = e
            self.trickling.set()


class SlowUpload(threading.Thread):
    """STOR that sends one byte (one TLS record) per 50 ms until told to stop (at least
    MIN_TRICKLE s), then close_notify; checks the stored file."""

    def __init__(self, server, user, path, local):
        super().__init__(daemon=True)
        self.s, self.user, self.path, self.local = server, user, path, local
        self.trickling = threading.Event()
        self.stop = None
        self.error = None
        self.result = None

    def run(self):
        try:
            r = self.s.tls_raw(self.user, prot=True, timeout=30)
            assert r.cmd("TYPE I")[0] == 200
            code, lines = r.cmd("EPSV")
            r.send(f"STOR {self.path}\r\n")
            d = r.data_connect(lines)
            assert r.reply()[0] == 150
            sent = bytearray()
            t0 = time.monotonic()
            self.trickling.set()
            i = 0
            while not (self.stop.is_set() and time.monotonic() - t0 >= MIN_TRICKLE):
                b = bytes([65 + i % 26])
                d.sendall(b)
                sent += b
                i += 1
                time.sleep(TRICKLE)
            self.trickle_secs = time.monotonic() - t0
            d.unwrap()
            d.close()
            self.result = r.reply()
            assert self.result[0] == 226, self.result
            with open(self.local, "rb") as fh:
                assert fh.read() == bytes(sent), "slow upload: stored bytes differ"
            assert r.cmd("QUIT")[0] == 221
            r.close()
        except BaseException as e:  # noqa: BLE001
            self.error = e
            self.trickling.set()


def normal_batch(s, env, d, n, tag):
    """n sessions at once, each logging in, uploading and downloading 64 KiB; returns the wall
    time of the whole batch and the errors."""
    errors = []

    def one(i):
        user = CYCLE[i % 3]
        try:
            f = s.ftps_reuse(user, timeout=30)
            f.cwd(d)
            roundtrip(f, env, user, f"{tag}{i}.bin", os.urandom(65536))
            f.quit()
        except BaseException as e:  # noqa: BLE001
            errors.append(f"{user}#{i}: {type(e).__name__}: {e}")

    t0 = time.monotonic()
    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not any(t.is_alive() for t in ts), f"{tag}: sessions hung"
    return time.monotonic() - t0, errors


def test_slow_clients_do_not_block_others(make_server, env, run_dirs, request):
    s = make_server(name="slow", system_pam=True, **PASV, log_level="info")
    d = run_dirs("slow")
    # Baseline: the batch of normal sessions alone.
    base, errors = normal_batch(s, env, d, NORMAL, "base")
    assert not errors, errors

    stop = threading.Event()
    big = os.urandom(8 * 1024 * 1024)
    for u in ("alice", "bob"):
        p = os.path.join(env.home(u), d, "big.bin")
        with open(p, "wb") as fh:
            fh.write(big)
        os.chown(p, USERS[u][0], USERS[u][0])
    slow = [SlowDownload(s, "alice", f"{d}/big.bin", big, stop),
            SlowDownload(s, "bob", f"{d}/big.bin", big, stop)]
    for u in ("carol", "alice"):
        up = SlowUpload(s, u, f"{d}/slow-up-{u}.bin", os.path.join(env.home(u), d,
                                                                   f"slow-up-{u}.bin"))
        up.stop = stop
        slow.append(up)
    for t in slow:
        t.start()
    for t in slow:
        assert t.trickling.wait(30), "slow client did not start its transfer"
        assert t.error is None, repr(t.error)
    count("slow clients", len(slow))
    time.sleep(0.3)  # the slow transfers are well under way
    t_normal, errors = normal_batch(s, env, d, NORMAL, "beside")
    # When the normal batch is done, every slow client is still trickling.
    still = [t for t in slow if t.is_alive() and t.result is None and t.error is None]
    stop.set()
    for t in slow:
        t.join(60)
    assert not errors, errors
    count("normal sessions beside slow ones", NORMAL)
    for t in slow:
        assert t.error is None, repr(t.error)
        assert not t.is_alive()
        assert t.result[0] == 226, t.result
    # The normal batch completed while every slow client was still trickling (a server that
    # serialised them behind the slow ones would never have finished it: the slow clients stop
    # only after it), and the slow transfers really were slow.
    assert len(still) == len(slow), "a slow client finished before the normal batch did"
    assert all(t.trickle_secs >= MIN_TRICKLE for t in slow)
    # Nor was the batch much slower than alone (baseline: the slower of a run before and after).
    after, errors = normal_batch(s, env, d, NORMAL, "after")
    assert not errors, errors
    base = max(base, after)
    limit = max(3 * base, base + 3.0)
    assert t_normal <= limit, (f"{NORMAL} normal sessions took {t_normal:.2f} s beside slow "
                               f"clients, {base:.2f} s alone")
    say(request, f"slow clients: {NORMAL} normal sessions took {base:.2f} s alone, "
        f"{t_normal:.2f} s beside {len(slow)} slow ones trickling for "
        f"{min(t.trickle_secs for t in slow):.1f}-{max(t.trickle_secs for t in slow):.1f} s")
    assert wait_until(lambda: children(s.proc.pid) == [], 15)
