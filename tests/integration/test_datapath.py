"""The data path (issue "Benchmarks and the fast data path"): which system calls carry the bytes.

Each test makes one transfer with every process of the session under `strace -f -ff` (a trace
file per process, descriptors shown with what they are: `-yy`), finds the data worker by what
it did, and checks how the bytes moved:

- PROT C binary download: sendfile(2) from the file to the socket, the whole file in one call;
  the worker reads none of it into user space.
- PROT C binary upload: splice(2) from the socket into a pipe and from the pipe into the file;
  the worker reads none of it.
- PROT P download: the file is read in 256 KiB blocks, and the TLS records leave through the
  1 MiB buffering BIO in writes of up to 1 MiB, not one write(2) per 16 KiB record.
- PROT P upload: TLS read-ahead asks the socket for 256 KiB at a time, and the file gets
  writes of several records each.
- PROT P downloads are corked: TCP_CORK goes on before the file's first byte is sent and off
  after its last, before the close_notify. PROT C's sendfile is not corked (there it only moved
  TCP work from the server to the client: bench/README.md).

A change that falls back to copying through read/write, or drops the read-ahead or the write
buffering, fails here. (bench/sizes.md has the measurements behind these sizes.)
"""
import glob
import hashlib
import io
import os
import re
import shutil

import pytest

from ftpsd_fixture import BINARY, USERS, sanitized

STRACE = shutil.which("strace")

pytestmark = [
    pytest.mark.skipif(not STRACE, reason="strace is not installed (make deps)"),
    # LeakSanitizer cannot run under ptrace; the calls checked here are the same in both builds.
    pytest.mark.skipif(sanitized(BINARY), reason="an ASan build cannot run under strace"),
]

SIZE = 4 * 1024 * 1024 + 12345  # not a multiple of any block size
BLOCK = 256 * 1024
SEND_BUFFER = 1024 * 1024
RECORD = 16 * 1024
RUN = os.urandom(3).hex()

# read(5<TCP:[...]>, ""..., 262144) = 16406   /   sendfile(6<TCP:[..]>, 7</home/..>, NULL, ..)
CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+)")
FD = re.compile(r"^(-?\d+)<([^>]*)>")


def parse(path):
    """[(call, [(fd, what) or raw argument, ...], result)] of one trace file."""
    calls = []
    with open(path, errors="replace") as fh:
        for line in fh:
            m = CALL.match(line.strip())
            if not m:
                continue
            args = []
            for a in m.group(2).split(", "):
                f = FD.match(a)
                args.append((int(f.group(1)), f.group(2)) if f else a)
            calls.append((m.group(1), args, int(m.group(3))))
    return calls


def is_tcp(arg):
    return isinstance(arg, tuple) and arg[1].startswith(("TCP:", "TCPv6:"))


def is_file(arg, dirname):
    """A descriptor of a file in the test's directory (uploads are written under a temporary
    name there, then renamed)."""
    return isinstance(arg, tuple) and f"/{dirname}/" in arg[1]


def traced_server(make_server, env, **conf):
    base = env.path(f"dp-{RUN}-{os.urandom(3).hex()}")
    s = make_server(prefix=[STRACE, "-f", "-ff", "-qq", "-yy", "-s", "0", "-o", base,
                            "-e", "trace=read,write,sendfile,splice,pread64,pwrite64,setsockopt"], **conf)
    return s, base


def traces(base):
    return {p: parse(p) for p in glob.glob(base + ".*")}


def worker_of(base, pred):
    """The trace of the one process whose calls satisfy pred."""
    found = [calls for calls in traces(base).values() if pred(calls)]
    assert len(found) == 1, f"{len(found)} processes match"
    return found[0]


def cork_calls(w):
    """[(index, "[1]" or "[0]")] of the worker's successful TCP_CORK settings."""
    return [(i, a[3]) for i, (n, a, r) in enumerate(w)
            if n == "setsockopt" and len(a) > 3 and a[2] == "TCP_CORK" and r == 0]


def corked_around(w, first, last):
    """TCP_CORK set on the worker's socket before call index `first` and cleared after `last`,
    and nothing set twice."""
    cork = cork_calls(w)
    assert [v for _, v in cork] == ["[1]", "[0]"], cork
    assert cork[0][0] < first and cork[1][0] > last, (cork, first, last)
    return cork[1][0]


def workdir(env, user, tag):
    name = f"dp-{RUN}-{tag}"
    path = os.path.join(env.home(user), name)
    os.mkdir(path)
    os.chown(path, USERS[user][0], USERS[user][0])
    return name, path


def put(path, data):
    with open(path, "wb") as fh:
        fh.write(data)
    os.chown(path, USERS["alice"][0], USERS["alice"][0])


def sha(b):
    return hashlib.sha256(b).hexdigest()


def test_prot_c_download_is_sendfile(make_server, env):
    name, path = workdir(env, "alice", "retr-c")
    data = os.urandom(SIZE)
    put(os.path.join(path, "f.bin"), data)
    s, base = traced_server(make_server, env, require_prot_p="no")
    f = s.ftps_reuse("alice", prot_p=False)
    f.cwd(name)
    out = io.BytesIO()
    assert f.retrbinary("RETR f.bin", out.write).startswith("226")
    f.quit()
    assert sha(out.getvalue()) == sha(data)
    w = worker_of(base, lambda c: any(n == "sendfile" for n, _, _ in c))
    calls = [(a, r) for n, a, r in w if n == "sendfile" and is_tcp(a[0]) and is_file(a[1], name)]
    assert sum(r for _, r in calls if r > 0) == SIZE
    # One call asks for the whole file, as vsftpd does (1 GiB at a time), not 1 MiB per call.
    assert int(calls[0][0][3]) >= SIZE and calls[0][1] == SIZE, calls[:3]
    # Nothing of the file went through the worker's memory.
    assert not [1 for n, a, r in w if n in ("read", "pread64") and is_file(a[0], name)
                and r > 0]
    assert not [1 for n, a, r in w if n == "write" and is_tcp(a[0]) and r > 0]
    assert not cork_calls(w)


def test_prot_c_upload_is_splice(make_server, env):
    name, path = workdir(env, "alice", "stor-c")
    data = os.urandom(SIZE)
    s, base = traced_server(make_server, env, require_prot_p="no")
    f = s.ftps_reuse("alice", prot_p=False)
    f.cwd(name)
    assert f.storbinary("STOR up.bin", io.BytesIO(data), blocksize=BLOCK).startswith("226")
    f.quit()
    with open(os.path.join(path, "up.bin"), "rb") as fh:
        assert sha(fh.read()) == sha(data)
    w = worker_of(base, lambda c: any(n == "splice" for n, _, _ in c))
    from_sock = [r for n, a, r in w if n == "splice" and is_tcp(a[0]) and r > 0]
    to_file = [r for n, a, r in w if n == "splice" and is_file(a[2], name) and r > 0]
    assert sum(from_sock) == SIZE and sum(to_file) == SIZE
    assert not [1 for n, a, r in w if n == "read" and is_tcp(a[0]) and r > 0]
    assert not [1 for n, a, r in w if n == "write" and is_file(a[0], name) and r > 0]


def test_prot_p_download_large_blocks_and_buffered_records(make_server, env):
    name, path = workdir(env, "alice", "retr-p")
    data = os.urandom(SIZE)
    put(os.path.join(path, "f.bin"), data)
    s, base = traced_server(make_server, env)
    f = s.ftps_reuse("alice")
    f.cwd(name)
    out = io.BytesIO()
    assert f.retrbinary("RETR f.bin", out.write, blocksize=BLOCK).startswith("226")
    f.quit()
    assert sha(out.getvalue()) == sha(data)
    w = worker_of(base, lambda c: any(n == "read" and is_file(a[0], name) for n, a, _ in c))
    reads = [(a[2], r) for n, a, r in w if n == "read" and is_file(a[0], name)]
    assert all(want == str(BLOCK) for want, _ in reads), reads[:5]
    assert sum(r for _, r in reads if r > 0) == SIZE
    writes = [r for n, a, r in w if n == "write" and is_tcp(a[0]) and r > 0]
    assert sum(writes) > SIZE  # the records' headers and tags on top of the file
    # Through the 1 MiB buffering BIO: about 64 records per write(2), not one each.
    assert max(writes) > SEND_BUFFER - RECORD - 1024, writes[:10]
    assert len(writes) <= SIZE // (32 * RECORD) + 4, f"{len(writes)} writes"
    # Corked from before the first file read (the ticket went out before) until the file is
    # all read; the close_notify is written after the uncork.
    reads_at = [i for i, (n, a, r) in enumerate(w) if n == "read" and is_file(a[0], name)]
    off = corked_around(w, reads_at[0], reads_at[-1])
    assert [i for i, (n, a, r) in enumerate(w) if n == "write" and is_tcp(a[0])][-1] > off


def test_prot_p_upload_reads_ahead_and_batches_records(make_server, env):
    name, path = workdir(env, "alice", "stor-p")
    data = os.urandom(SIZE)
    s, base = traced_server(make_server, env)
    f = s.ftps_reuse("alice")
    f.cwd(name)
    assert f.storbinary("STOR up.bin", io.BytesIO(data), blocksize=BLOCK).startswith("226")
    f.quit()
    with open(os.path.join(path, "up.bin"), "rb") as fh:
        assert sha(fh.read()) == sha(data)
    w = worker_of(base, lambda c: any(n == "write" and is_file(a[0], name)
                                      for n, a, _ in c))
    sock_reads = [(int(a[2]), r) for n, a, r in w if n == "read" and is_tcp(a[0]) and r > 0]
    # Read-ahead: every read of the socket offers the whole 256 KiB buffer (less what is
    # already in it), never just the next record's header or body.
    assert max(want for want, _ in sock_reads) >= BLOCK - 1024, sock_reads[:5]
    file_writes = [r for n, a, r in w if n == "write" and is_file(a[0], name) and r > 0]
    assert sum(file_writes) == SIZE
    # Every record already read ahead is decrypted before the file write: on average several
    # records per write(2) (the client sends 16 KiB records; one each would be SIZE/16 KiB).
    assert len(file_writes) <= SIZE // (2 * RECORD), f"{len(file_writes)} file writes"
