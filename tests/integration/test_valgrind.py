"""valgrind memcheck over one whole session (issue "Reliability").

Every process of the session runs under memcheck: the monitor (started by
systemd-socket-activate under valgrind), and, as valgrind follows fork() by itself, the front,
the user process and each data worker (--trace-children=yes would follow exec too; there is
none). --child-silent-after-fork=no and --log-file=DIR/vg.%p give each process its own log.

The session: login, LIST, a PROT P upload and download (sha256 compared, on disk too), a TYPE A
upload and download, ABOR during a large download, QUIT. Then every log must show no memory
error (its ERROR SUMMARY, less the definite leaks that --errors-for-leak-kinds=definite counts
as errors too), and the processes that live as long as the session (monitor, front, user
process) and every data worker that ended by itself must have lost nothing definitely (a
worker leaves by _exit() after one transfer; what it still points to is "still reachable"). A
worker stopped by ABOR is killed (SIGKILL): its log has no summary, and must hold no error.

seccomp = off: valgrind itself makes the system calls the filters forbid (it maps its
translations executable, opens its log files, ...) and would be killed at once. chroot,
privilege drop and the resource limits stay as configured. valgrind 3.19 (Debian 12) knows
neither openat2 nor Landlock: Landlock is skipped as on a kernel without it, and
tests/lib/openat2_shim.c (LD_PRELOAD) stands in for openat2 with a stricter subset of it.
"""
import ftplib
import glob
import hashlib
import io
import os
import re
import shutil
import time

import pytest

from ftpsd_fixture import BINARY, USERS, sanitized

VALGRIND = shutil.which("valgrind")
SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "valgrind.supp")

pytestmark = [
    pytest.mark.skipif(not VALGRIND, reason="valgrind is not installed (make deps installs it)"),
]

# What memcheck reports as errors (the first line of each), for logs cut short by SIGKILL.
ERROR_LINE = re.compile(
    r"^==\d+== (Invalid (read|write|free|alignment)|Conditional jump|Use of uninitialised|"
    r"Syscall param|Mismatched free|Source and destination overlap|Argument .* of function|"
    r"Invalid memory pool|Jump to the invalid|Fishy value|"
    r"Process terminating with default action of signal (?!9 ))", re.M)


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Proc:
    def __init__(self, path):
        self.path = path
        self.pid = int(path.rsplit(".", 1)[1])
        with open(path, errors="replace") as fh:
            self.text = fh.read()
        m = re.search(r"^==\d+== Parent PID: (\d+)", self.text, re.M)
        self.ppid = int(m.group(1)) if m else None
        m = re.search(r"ERROR SUMMARY: (\d+) errors", self.text)
        self.errors = int(m.group(1)) if m else None
        m = re.search(r"definitely lost: ([\d,]+) bytes", self.text)
        self.definitely_lost = int(m.group(1).replace(",", "")) if m else 0
        # --errors-for-leak-kinds=definite: each definite leak record counts as one error.
        leaks = len(re.findall(r"blocks? (are|is) definitely lost in loss record", self.text))
        self.memory_errors = None if self.errors is None else self.errors - leaks
        self.role = "?"


def roles(procs):
    """The monitor is the process valgrind started; its first child is the front, its second
    (after login) the user process; the front's children are data workers."""
    by_pid = {p.pid: p for p in procs}
    monitors = [p for p in procs if p.ppid not in by_pid]
    assert len(monitors) == 1, [(p.pid, p.ppid) for p in procs]
    mon = monitors[0]
    mon.role = "monitor"
    kids = sorted((p for p in procs if p.ppid == mon.pid), key=lambda p: p.pid)
    assert len(kids) == 2, [(p.pid, p.ppid) for p in procs]
    kids[0].role, kids[1].role = "front", "user"
    for p in procs:
        if p.ppid == kids[0].pid:
            p.role = "worker"
    return mon, kids[0], kids[1]


def read_logs(logdirs):
    return [Proc(p) for d in logdirs for p in glob.glob(os.path.join(d, "vg.*"))]


def wait_for_logs(logdirs, timeout):
    """Until the monitor has written its summary: it is the last to end, after it reaped the
    front and the user process (which reaped or killed every worker)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        procs = read_logs(logdirs)
        pids = {p.pid for p in procs}
        mon = [p for p in procs if p.ppid not in pids]
        if len(mon) == 1 and mon[0].errors is not None:
            return procs
        time.sleep(0.5)
    return read_logs(logdirs)


@pytest.fixture
def vg_server(make_server, env):
    binary = BINARY
    if sanitized(binary):
        pytest.skip("make check-asan: the server is an ASan build, which valgrind cannot run")
    run = f"{os.getpid()}-{time.time_ns()}"
    logdir = env.path(f"valgrind-{run}")
    os.mkdir(logdir)
    os.chmod(logdir, 0o1777)  # the logs of processes that no longer run as root
    # A data worker is forked by the front after its chroot to empty_dir, where valgrind
    # creates the worker's log: this test's empty_dir holds the same path.
    front_root = env.path(f"valgrind-root-{run}")
    os.makedirs(front_root + logdir)
    os.chmod(front_root + logdir, 0o1777)
    # valgrind 3.19 answers ENOSYS to openat2 (and to Landlock's calls, which ftpsd then goes
    # without): tests/lib/openat2_shim.c stands in for it, in front of the fixture's wrappers.
    preload = env.shim_preload("openat2_shim")
    # valgrind keeps descriptors of its own above the hard limit and refuses a setrlimit of
    # RLIMIT_NOFILE whose hard limit differs from what it reports: started with 256 as the soft
    # limit, it reports 256 as the hard one, which is what the sandbox sets (max_open_files).
    prefix = ["env", f"LD_PRELOAD={preload}", "prlimit", "--nofile=256:4096",
              VALGRIND, "--tool=memcheck", "--trace-children=yes",
              "--child-silent-after-fork=no", "--leak-check=full",
              "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
              "--num-callers=40", "--error-limit=no", "--vgdb=no", f"--suppressions={SUPP}",
              f"--log-file={logdir}/vg.%p"]
    s = make_server(prefix=prefix, seccomp="off", empty_dir=front_root, idle_timeout=600,
                    data_timeout=600, login_timeout=600)
    return s, [logdir, front_root + logdir]


def test_session_under_memcheck(vg_server):
    s, logdirs = vg_server
    home = s.env.home("alice")
    sub = f"vg-{time.time_ns()}"
    os.mkdir(os.path.join(home, sub))
    os.chown(os.path.join(home, sub), USERS["alice"][0], USERS["alice"][0])
    big = os.path.join(home, sub, "big.bin")
    with open(big, "wb") as fh:
        fh.truncate(256 * 1024 * 1024)
    os.chown(big, USERS["alice"][0], USERS["alice"][0])

    f = s.ftps_reuse("alice", timeout=300)        # login, PBSZ 0, PROT P
    f.cwd(sub)
    listing = []
    f.retrlines("LIST", listing.append)
    assert any(l.endswith(" big.bin") for l in listing), listing

    data = os.urandom(1024 * 1024 + 17)
    f.storbinary("STOR up.bin", io.BytesIO(data))
    out = io.BytesIO()
    f.retrbinary("RETR up.bin", out.write)
    assert sha(out.getvalue()) == sha(data)
    with open(os.path.join(home, sub, "up.bin"), "rb") as fh:
        assert sha(fh.read()) == sha(data)

    text = b"".join(b"line %d of the text\n" % i for i in range(3000))
    f.storlines("STOR text.txt", io.BytesIO(text))        # TYPE A, CRLF on the wire
    with open(os.path.join(home, sub, "text.txt"), "rb") as fh:
        assert fh.read() == text
    lines = []
    f.retrlines("RETR text.txt", lines.append)            # TYPE A back
    assert "\n".join(lines).encode() + b"\n" == text

    f.voidcmd("TYPE I")
    conn = f.transfercmd("RETR big.bin")
    got = 0
    while got < 100000:
        chunk = conn.recv(65536)
        assert chunk
        got += len(chunk)
    f.putcmd("ABOR")
    first, second = f.getline(), f.getline()
    assert first.startswith("426 ") and second.startswith("226 "), (first, second)
    conn.close()
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()

    procs = wait_for_logs(logdirs, timeout=180)
    mon, front, user = roles(procs)
    workers = [p for p in procs if p.role == "worker"]
    assert len(workers) >= 5, [(p.pid, p.role) for p in procs]   # LIST, 2+2 transfers, ABOR

    problems = []
    for p in procs:
        if p.errors is None:
            # Only a worker killed by ABOR may end without a summary.
            if p.role != "worker":
                problems.append(f"{p.role} {p.pid}: no ERROR SUMMARY (did it end?)")
            elif ERROR_LINE.search(p.text):
                problems.append(f"{p.role} {p.pid}: errors before it was killed")
        elif p.memory_errors:
            problems.append(f"{p.role} {p.pid}: {p.memory_errors} memory errors")
        if p.definitely_lost:
            problems.append(f"{p.role} {p.pid}: {p.definitely_lost} bytes definitely lost")
    bad = [p for p in procs if p.memory_errors or (p.errors is None and ERROR_LINE.search(p.text))
           or p.definitely_lost]
    report = "\n".join(f"---- {p.role} {p.path}\n{p.text}" for p in bad)
    assert not problems, "\n".join(problems) + "\n" + report[-20000:]
