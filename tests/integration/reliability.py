"""Helpers shared by the reliability tests (test_load.py, test_faults.py, test_badinput.py):
process trees read from /proc, abrupt socket closes, syslog lines by pid, per-run working
directories, and a counter of what was injected."""
import collections
import glob
import os
import re
import shutil
import socket
import ssl
import struct
import time

from ftpsd_fixture import NOPRIV, USERS

# Names in the (session-wide, possibly shared) homes carry this run's tag.
RUN = os.urandom(3).hex()

# What the tests injected, by kind; printed at the end of each module.
COUNTS = collections.Counter()


def count(kind, n=1):
    COUNTS[kind] += n


def say(request, line):
    """Prints a line on the terminal even while pytest captures output (no -s needed)."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        with capman.global_and_fixture_disabled():
            print("\n" + line, flush=True)
    else:
        print(line)


def report(request, title, kinds):
    """Prints the counts of the given kinds."""
    parts = ", ".join(f"{k}: {COUNTS[k]}" for k in kinds if COUNTS[k])
    say(request, f"{title}: {parts or 'nothing'}")


# --- processes ------------------------------------------------------------------------------

def proc_stat(pid):
    """(ppid, state, starttime) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
        fields = stat.rsplit(")", 1)[1].split()
        return int(fields[1]), fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None  # gone, or going while it was read


def proc_uid(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def all_stats():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                out[int(d)] = st
    return out


def children(pid, stats=None):
    stats = stats if stats is not None else all_stats()
    return [p for p, st in stats.items() if st[0] == pid]


def descendants(pid):
    """{pid: starttime} of every process below pid (one /proc scan)."""
    stats = all_stats()
    kids = collections.defaultdict(list)
    for p, st in stats.items():
        kids[st[0]].append(p)
    out, todo = {}, [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out[c] = stats[c][2]
            todo.append(c)
    return out


def alive(procs):
    """The processes of {pid: starttime} that still exist (zombies count: not yet reaped)."""
    left = {}
    for pid, start in procs.items():
        st = proc_stat(pid)
        if st and st[2] == start:
            left[pid] = st
    return left


def wait_until(pred, timeout=5.0, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def session_tree(server, uid, timeout=5):
    """(monitor, front, user) of the one logged-in session of a dedicated server."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        stats = all_stats()
        for mon in children(server.proc.pid, stats):
            by_uid = {proc_uid(k): k for k in children(mon, stats)}
            if NOPRIV[1] in by_uid and uid in by_uid:
                return mon, by_uid[NOPRIV[1]], by_uid[uid]
        time.sleep(0.05)
    raise AssertionError("session processes not found")


def workers_of(front, timeout=5):
    found = []
    wait_until(lambda: found.extend(children(front)) or found, timeout)
    return found


def kill_leftovers(procs):
    """Ends processes this test's server started that outlived their session (by pid)."""
    for pid in alive(procs):
        try:
            os.kill(pid, 9)
        except OSError:
            pass


# --- sockets --------------------------------------------------------------------------------

def rst_close(sock):
    """Closes a socket (TLS or not) with SO_LINGER 0: the peer gets a TCP RST, no FIN and no
    TLS close_notify. The descriptor is detached and closed at once, even while file objects
    (ftplib's makefile) still refer to the socket object."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        fd = sock.detach()
    except OSError:
        return
    if fd >= 0:
        os.close(fd)


def read_to_eof(sock, limit=5.0):
    """Reads until EOF/reset; returns (bytes, closed). closed is False if still open at limit."""
    sock.settimeout(0.5)
    got = b""
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            d = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        except (ssl.SSLError, OSError):
            return got, True
        if not d:
            return got, True
        got += d
    return got, False


def epsv_port(lines):
    import re
    return int(re.search(r"\|\|\|(\d+)\|", lines[0]).group(1))


# --- clients and checks ---------------------------------------------------------------------

def assert_server_works(server, user="alice"):
    """A NEW session on the same server logs in and answers NOOP."""
    r = server.tls_raw(user, timeout=30)
    try:
        assert r.cmd("NOOP")[0] == 200
        assert r.cmd("QUIT")[0] == 221
    finally:
        r.close()


def parts(path):
    return glob.glob(os.path.join(path, ".ftpsd-*.part"))


def make_user_dir(env, user, name):
    """A fresh directory in a user's home, owned by the user."""
    path = os.path.join(env.home(user), name)
    os.mkdir(path)
    os.chown(path, USERS[user][0], USERS[user][0])
    os.chmod(path, 0o755)
    return path


def user_dir_fixture(prefix):
    """A fixture giving each test (name, path) of a fresh directory of its own in alice's home,
    named prefix + the test's name + this run's tag, removed afterwards."""
    import pytest

    @pytest.fixture
    def wd(env, request):
        name = prefix + re.sub(r"\W", "_", request.node.name)[:60] + "_" + RUN
        path = make_user_dir(env, "alice", name)
        yield name, path
        shutil.rmtree(path, ignore_errors=True)
    return wd


def put(path, data, user="alice"):
    with open(path, "wb") as fh:
        fh.write(data)
    os.chown(path, USERS[user][0], USERS[user][0])
    return path


class SyslogMark:
    """The syslog lines written after this point (None if no syslog is readable)."""

    def __init__(self, syslog):
        self.syslog = syslog if syslog is not None and syslog.available else None
        self.offset = 0
        if self.syslog:
            try:
                self.offset = os.path.getsize(self.syslog.path)
            except OSError:
                self.offset = 0

    def text(self, wait_for=None, timeout=5):
        """The new text; wait_for: a substring or a compiled regex to wait for (up to timeout)."""
        if not self.syslog:
            return None
        deadline = time.time() + timeout
        while True:
            try:
                with open(self.syslog.path, "rb") as fh:
                    fh.seek(self.offset)
                    t = fh.read().decode("utf-8", "replace")
            except OSError:
                t = ""
            if wait_for is None or time.time() > deadline:
                return t
            if (wait_for.search(t) if hasattr(wait_for, "search") else wait_for in t):
                return t
            time.sleep(0.1)


def log_lines(text, pids):
    """The syslog lines written by the given ftpsd pids. Other test runs on the machine may log
    to the same /dev/log, so lines are attributed by pid."""
    out = []
    for line in (text or "").splitlines():
        m = re.search(r" ftpsd\[(\d+)\]: ", line)
        if m and int(m.group(1)) in pids:
            out.append(line)
    return out
