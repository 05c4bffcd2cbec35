"""The process model of a live session, read from /proc: who runs as whom, with which
capabilities, inside which root, holding which sockets, and where the private key lives
(DESIGN invariants 1, 2, 4, 6)."""
import os
import re
import socket
import subprocess
import time

import pytest

from ftpsd_fixture import NOPRIV, USERS


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(d))
    return out


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def tcp_inodes():
    inodes = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(f) as fh:
            for line in fh.readlines()[1:]:
                inodes.add(line.split()[9])
    return inodes


def tcp_fds(pid):
    tcp = tcp_inodes()
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m and m.group(1) in tcp:
            found.append(int(fd))
    return found


def memory_contains(pid, needles):
    """True if any needle occurs in the process's readable private memory."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if "r" not in parts[1] or (len(parts) > 5 and parts[5].startswith("[v")):
                continue
            if hi - lo > 1 << 30:
                continue  # AddressSanitizer's shadow (make check-asan): terabytes, no data
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            if any(n in data for n in needles):
                return True
    return False


def sandboxed(pid):
    """The seccomp filter is the last step of a process's set-up."""
    try:
        return status(pid).get("Seccomp") == "2"
    except FileNotFoundError:
        return False


def data_worker(front, timeout=5):
    """The one data worker of a front, once it has finished its set-up: it is forked when the
    data connection is accepted, and closes the front's other descriptors, sets its limits and
    loads its own filter (on top of the front's, the last step) only then; /proc read at once
    can show the front's state."""
    deadline = time.time() + timeout
    workers = []
    while time.time() < deadline:
        workers = children(front)
        if len(workers) == 1:
            try:
                if status(workers[0]).get("Seccomp_filters") == "2":
                    return workers[0]
            except FileNotFoundError:
                pass
        time.sleep(0.05)
    assert len(workers) == 1, workers
    return workers[0]  # the tests' assertions say what is missing


def session_processes(server, uid):
    """(monitor, front, user) of the one logged-in session of a dedicated server, once the user
    process has finished its set-up: the 230 can come before that process, forked at login, has
    dropped its privileges and loaded its filter (seen under make check-asan). The front is set
    up before its first reply."""
    filtered = server.settings.get("seccomp", "on") != "off"
    deadline = time.time() + 5
    found = None
    while time.time() < deadline:
        for mon in children(server.proc.pid):
            kids = children(mon)
            by_uid = {int(status(k)["Uid"].split()[0]): k for k in kids}
            if NOPRIV[1] in by_uid and uid in by_uid:
                found = mon, by_uid[NOPRIV[1]], by_uid[uid]
        if found and (not filtered or sandboxed(found[2])):
            return found
        time.sleep(0.1)
    if found:
        return found  # the tests' assertions say what is missing
    raise AssertionError("session processes not found")


def caps_empty(st):
    return all(int(st[k], 16) == 0 for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))


@pytest.fixture
def live(make_server):
    s = make_server()
    r = s.raw()
    r.reply()
    r.starttls(s.env.cert)
    r.login("alice")
    mon, front, user = session_processes(s, USERS["alice"][0])
    yield s, r, mon, front, user
    r.close()


def test_monitor_is_root_and_not_network_facing(live):
    s, r, mon, front, user = live
    st = status(mon)
    assert st["Uid"].split()[0] == "0"
    assert tcp_fds(mon) == [], "the monitor must not hold the client connection"
    assert os.readlink(f"/proc/{mon}/fd/0") == "/dev/null"


def session_id(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[3])


def test_each_connection_is_its_own_session(live):
    """The monitor leads a session of its own (setsid), so that under systemd-socket-activate or
    xinetd every connection gets its own scheduler autogroup, not one shared by all clients."""
    s, r, mon, front, user = live
    assert session_id(s.proc.pid) != mon
    assert session_id(mon) == mon
    assert session_id(front) == mon and session_id(user) == mon


def test_front_is_unprivileged_and_chrooted(live):
    s, r, mon, front, user = live
    st = status(front)
    assert st["Uid"].split() == [str(NOPRIV[1])] * 4
    assert st["Gid"].split() == [str(NOPRIV[1])] * 4
    assert st["Groups"] == ""
    assert caps_empty(st), st
    assert st["NoNewPrivs"] == "1"
    assert os.readlink(f"/proc/{front}/root") == s.env.empty
    assert 0 in tcp_fds(front)


def test_user_process_is_the_user_without_network(live):
    s, r, mon, front, user = live
    st = status(user)
    uid = str(USERS["alice"][0])
    assert st["Uid"].split() == [uid] * 4
    assert st["Gid"].split() == [uid] * 4
    assert caps_empty(st), st
    assert st["NoNewPrivs"] == "1"
    assert os.readlink(f"/proc/{user}/root") == s.env.home("alice")
    assert tcp_fds(user) == []


def test_user_process_holds_only_its_descriptors(live):
    """The user process (forked from the monitor, which never execs) keeps stdin/out/err, its
    channel, its root and the log sockets: not the files nss_wrapper (or any NSS or PAM
    module) opened in the monitor."""
    s, r, mon, front, user = live
    targets = {}
    for fd in os.listdir(f"/proc/{user}/fd"):
        try:
            targets[int(fd)] = os.readlink(f"/proc/{user}/fd/{fd}")
        except OSError:
            pass
    monitor_files = {os.readlink(f"/proc/{mon}/fd/{fd}") for fd in os.listdir(f"/proc/{mon}/fd")}
    assert {s.env.passwd, s.env.group} & monitor_files, "the monitor no longer holds them"
    # make check-asan: the sanitizer's own log file (log_path), opened by its runtime.
    files = {fd: t for fd, t in targets.items()
             if t.startswith("/") and fd > 2 and "/build/asan/logs/" not in t}
    assert files == {fd: t for fd, t in files.items() if t == s.env.home("alice")}, targets
    others = [t for fd, t in targets.items() if fd > 2 and not t.startswith("/")]
    assert all(t.startswith("socket:[") for t in others), targets
    assert len(others) <= 3, targets    # its channel, syslog, the journal


def test_data_worker_is_unprivileged(live):
    s, r, mon, front, user = live
    assert r.cmd("PBSZ 0")[0] == 200
    assert r.cmd("PROT P")[0] == 200
    code, lines = r.cmd("EPSV")
    assert code == 229
    port = int(re.search(r"\|\|\|(\d+)\|", lines[0]).group(1))
    data = socket.create_connection((s.host, port))
    worker = data_worker(front)
    st = status(worker)
    assert st["Uid"].split() == [str(NOPRIV[1])] * 4
    assert caps_empty(st) and st["NoNewPrivs"] == "1"
    # The worker keeps only its data socket and its channel to the front.
    fds = os.listdir(f"/proc/{worker}/fd")
    assert len(fds) == 2, fds
    assert len(tcp_fds(worker)) == 1
    data.close()


def private_key_needles(keyfile):
    out = subprocess.run(["openssl", "pkey", "-in", keyfile, "-text", "-noout"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"priv:\s*\n((?:\s+[0-9a-f:]+\n)+)", out)
    hexstr = re.sub(r"[\s:]", "", m.group(1))
    raw = bytes.fromhex(hexstr).lstrip(b"\0")
    # OpenSSL keeps the scalar as little-endian 64-bit limbs; look for both byte orders.
    return [raw[-24:], raw[::-1][:24]]


def test_private_key_only_in_front(live):
    """Invariant 2: the key is in the TLS process (the front) and nowhere else."""
    s, r, mon, front, user = live
    needles = private_key_needles(s.env.key)
    assert memory_contains(front, needles), "test cannot find the key even in the front"
    assert not memory_contains(user, needles), "the user process holds the TLS private key"
    assert not memory_contains(mon, needles), "the monitor holds the TLS private key"
