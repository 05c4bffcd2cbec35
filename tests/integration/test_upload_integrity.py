"""What an upload leaves on disk: never another file than the one named, a resumable file
after an interrupted resume, the replaced file's owner, group and links kept, nothing left
behind by a SIGTERM, and names that listings can show."""
import ftplib
import io
import os
import re
import signal
import socket

import pytest

from ftpsd_fixture import USERS
from reliability import (alive, descendants, kill_leftovers, make_user_dir, parts, put,
                         session_tree, user_dir_fixture, wait_until)

ALICE, BOB = USERS["alice"][0], USERS["bob"][0]
SHARED_GID = 60500  # the fixture's group "shared": alice and bob


wd = user_dir_fixture("upl_")


def client(server, cwd):
    f = server.ftps_reuse("alice", timeout=30)
    f.voidcmd("TYPE I")
    f.cwd(cwd)
    return f


def stor(f, cmd, data, rest=None):
    with f.transfercmd(cmd, rest) as conn:
        conn.sendall(data)
        conn.unwrap()
    return f.voidresp()


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


def drop_without_close_notify(conn):
    socket.socket.shutdown(conn, socket.SHUT_RDWR)
    conn.close()


def test_name_longer_than_name_max_is_refused_before_150(server, wd):
    """A last component of 256+ bytes gets 553 before any 150; it was cut to 255 bytes and the
    upload renamed over that other (write-protected) file with a 226."""
    name, path = wd
    victim = os.path.join(path, "v" * 255)
    put(victim, b"precious data\n")
    os.chmod(victim, 0o444)
    f = client(server, name)
    with pytest.raises(ftplib.error_perm, match=r"^553 .*File name too long"):
        f.transfercmd("STOR " + "v" * 255 + "EXTRA")
    assert read(victim) == b"precious data\n"
    assert os.stat(victim).st_mode & 0o777 == 0o444
    assert sorted(os.listdir(path)) == ["v" * 255]
    f.quit()


def test_interrupted_resume_is_cut_where_it_stopped(server, wd):
    """REST n + STOR over a longer file, interrupted: the file ends at the last byte received,
    so SIZE is where the next resume starts, and that resume gives the right file. The reply
    says what was kept."""
    name, path = wd
    target = os.path.join(path, "f.bin")
    put(target, b"A" * 1_000_000)
    want = b"A" * 100_000 + bytes(range(256)) * 3516 + b"B" * 4
    assert len(want) == 1_000_100
    f = client(server, name)
    conn = f.transfercmd("STOR f.bin", rest=100_000)
    conn.sendall(want[100_000:700_000])
    drop_without_close_notify(conn)
    with pytest.raises(ftplib.error_temp) as ei:
        f.voidresp()
    assert str(ei.value).startswith("426 "), ei.value
    assert "partial file kept, 700000 bytes" in str(ei.value)
    assert f.size("f.bin") == 700_000
    assert stor(f, "STOR f.bin", want[700_000:], rest=700_000).startswith("226")
    assert read(target) == want
    f.quit()


def test_resume_that_never_starts_leaves_the_file(server, wd):
    """An upload in place (a resume, an append, a STOR through a symlink) aborted before the
    data connection opens: the file is as it was (the in-place open no longer truncates), and
    the reply says so."""
    name, path = wd
    target = put(os.path.join(path, "keep.bin"), b"K" * 5000)
    os.symlink("keep.bin", os.path.join(path, "link.bin"))
    f = client(server, name)
    for cmd, rest in (("STOR keep.bin", 100), ("APPE keep.bin", None), ("STOR link.bin", None)):
        f.sendcmd("PASV")
        if rest:
            f.sendcmd(f"REST {rest}")
        assert f.sendcmd(cmd).startswith("150")
        f.putcmd("ABOR")
        assert f.getline().startswith("426 Transfer aborted; file left as it was")
        assert f.getline().startswith("226 ")
        assert read(target) == b"K" * 5000
    f.quit()


def test_replace_in_read_only_directory_writes_in_place(server, wd):
    """A file the user may write, in a directory the user may not write: STOR replaces its
    content (MLST says perm=w), instead of 550 for the temporary file it cannot create."""
    name, path = wd
    ro = make_user_dir(server.env, "alice", os.path.join(name, "ro"))
    target = put(os.path.join(ro, "mine.txt"), b"old text, longer than the new\n")
    os.chmod(ro, 0o555)
    f = client(server, name)
    assert "perm=" in f.sendcmd("MLST ro/mine.txt") and "w" in re.search(
        r"perm=(\w*)", f.sendcmd("MLST ro/mine.txt")).group(1)
    assert stor(f, "STOR ro/mine.txt", b"new\n").startswith("226")
    assert read(target) == b"new\n"
    assert os.listdir(ro) == ["mine.txt"]
    f.quit()


def test_replace_keeps_owner_group_mode_and_links(server, wd):
    """Replacing a file that is not only the user's: bob's group-writable file keeps bob as
    owner and its group; a file with a second hard link is changed under both names; bob's
    world-writable file in a sticky directory is replaced (a rename over it would fail after
    the whole upload)."""
    name, path = wd
    f = client(server, name)
    shared = put(os.path.join(path, "plan.txt"), b"bob's plan\n", user="bob")
    os.chown(shared, BOB, SHARED_GID)
    os.chmod(shared, 0o660)
    assert stor(f, "STOR plan.txt", b"alice's edit\n").startswith("226")
    st = os.stat(shared)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (BOB, SHARED_GID, 0o660)
    assert read(shared) == b"alice's edit\n"

    orig = put(os.path.join(path, "orig.txt"), b"linked old\n")
    os.link(orig, os.path.join(path, "alias.txt"))
    assert stor(f, "STOR orig.txt", b"linked new\n").startswith("226")
    assert read(os.path.join(path, "alias.txt")) == b"linked new\n"
    assert os.stat(orig).st_nlink == 2

    drop = os.path.join(path, "drop")
    os.mkdir(drop)
    os.chmod(drop, 0o1777)
    bobs = put(os.path.join(drop, "bobs.txt"), b"bob's\n", user="bob")
    os.chmod(bobs, 0o666)
    assert stor(f, "STOR drop/bobs.txt", b"A" * 300_000).startswith("226")
    assert read(bobs) == b"A" * 300_000 and os.stat(bobs).st_uid == BOB
    f.quit()


def test_replace_of_own_file_is_atomic_and_keeps_group(server, wd):
    """The user's own file with one link is replaced by a new file renamed over it (a new
    inode, so a reader never sees half of it), which takes the old file's mode and group."""
    name, path = wd
    target = put(os.path.join(path, "own.txt"), b"old\n")
    os.chown(target, ALICE, SHARED_GID)
    os.chmod(target, 0o640)
    before = os.stat(target).st_ino
    f = client(server, name)
    assert stor(f, "STOR own.txt", b"new\n").startswith("226")
    st = os.stat(target)
    assert st.st_ino != before
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (ALICE, SHARED_GID, 0o640)
    assert read(target) == b"new\n"
    f.quit()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_mid_upload_leaves_no_temporary_file(make_server, wd, sig):
    """systemctl stop sends SIGTERM to every process of the session: the user process ends the
    pending upload as ABORT would, so no .ftpsd-*.part file stays in the user's directory.
    SIGHUP too (a hang-up), which the monitor takes as an end: the user process died of it
    and left the file."""
    name, path = wd
    s = make_server()
    target = put(os.path.join(path, "big.bin"), b"old\n")
    f = client(s, name)
    mon, front, user = session_tree(s, ALICE)
    conn = f.transfercmd("STOR big.bin")
    conn.sendall(os.urandom(512 * 1024))
    assert wait_until(lambda: len(parts(path)) == 1, 5), os.listdir(path)
    procs = descendants(s.proc.pid)
    try:
        for pid in procs:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass    # the monitor's SIGTERM to the front may have ended it already
        assert wait_until(lambda: not alive(procs), 10), alive(procs)
    finally:
        kill_leftovers(procs)
        conn.close()
    assert parts(path) == [], os.listdir(path)
    assert read(target) == b"old\n"


def test_path_longer_than_the_user_process_takes(make_server, wd):
    """max_line_length allows arguments past the 4095 bytes a path may have: 550 (553 for a
    name to create), and the session goes on (the user process used to end, and the client got
    421)."""
    name, path = wd
    s = make_server(max_line_length=65536)
    f = client(s, name)
    for cmd in ("SIZE ", "CWD ", "MKD ", "DELE ", "RNFR "):
        with pytest.raises(ftplib.error_perm, match=r"^550 File name too long"):
            f.sendcmd(cmd + "a/" * 2100)
    with pytest.raises(ftplib.error_perm, match=r"^553 File name too long"):
        f.transfercmd("STOR " + "a/" * 2100)
    assert f.sendcmd("NOOP").startswith("200")
    f.quit()


def test_upload_failing_at_close_is_not_226(make_server, env, wd):
    """A file system that reports the write-back failure at close (NFS, CIFS, FUSE: EDQUOT,
    here from tests/lib/close_fault_shim.c for a file closed at 77777 bytes): 552 and nothing
    stored, where the worker ignored close() and the client was told 226."""
    name, path = wd
    s = make_server(prefix=["env", "LD_PRELOAD=" + env.shim_preload("close_fault_shim")])
    f = client(s, name)
    with pytest.raises(ftplib.error_perm, match=r"^552 "):
        stor(f, "STOR quota.bin", b"q" * 77777)
    assert not os.path.exists(os.path.join(path, "quota.bin"))
    assert parts(path) == []
    # Any other size is stored as before.
    assert stor(f, "STOR fine.bin", b"f" * 77778).startswith("226")
    assert read(os.path.join(path, "fine.bin")) == b"f" * 77778
    f.quit()


def raw(f, line, echoes_cr=False):
    """A command with bytes ftplib refuses to send (CR, NUL); returns the reply. A reply that
    names the file pads its CR with NUL (RFC 2640), where ftplib's text file splits the line:
    joined again."""
    f.sock.sendall(line + b"\r\n")
    try:
        resp = f.getresp()
    except ftplib.Error as e:
        resp = str(e)
    while echoes_cr and not resp.endswith("."):
        resp += "\r" + f.getline()
    return resp


def test_new_names_with_line_breaks_are_refused(server, wd):
    """CR (sent as CR NUL, RFC 2640) in a new name: 553 for STOR, MKD and RNTO, as listings
    could not show it. An existing file of such a name stays reachable."""
    name, path = wd
    f = client(server, name)
    f.sendcmd("PASV")
    assert raw(f, b"STOR hidden\r\0file", True) == \
        "553 hidden\r\0file: File names may not contain CR or LF."
    assert raw(f, b"MKD hidden\r\0dir", True) == \
        "553 hidden\r\0dir: File names may not contain CR or LF."
    put(os.path.join(path, "plain"), b"p")
    assert f.sendcmd("RNFR plain").startswith("350")
    assert raw(f, b"RNTO hidden\r\0name", True) == \
        "553 hidden\r\0name: File names may not contain CR or LF."
    assert sorted(os.listdir(path)) == ["plain"]
    put(os.path.join(path, "old\rname"), b"x" * 10)
    assert raw(f, b"SIZE old\r\0name") == "213 10"
    f.quit()


def test_rename_to_name_with_trailing_slash_needs_a_directory(server, wd):
    """RNTO "name/" for a file is refused, as rename(2) refuses it; it used to make a file
    "name". A directory may be renamed that way."""
    name, path = wd
    put(os.path.join(path, "b.txt"), b"b")
    os.mkdir(os.path.join(path, "d"))
    f = client(server, name)
    f.sendcmd("RNFR b.txt")
    with pytest.raises(ftplib.error_perm, match=r"^553 .*Not a directory"):
        f.sendcmd("RNTO newname/")
    f.sendcmd("RNFR d")
    assert f.sendcmd("RNTO e/").startswith("250")
    assert sorted(os.listdir(path)) == ["b.txt", "e"]
    f.quit()


def test_keep_partial_uploads_keeps_a_new_name_for_resuming(make_server, wd):
    """keep_partial_uploads = yes (checklist Z-07's policy): ABOR during a STOR to a new name
    keeps what arrived under that name, the reply says how much, and REST + STOR completes it.
    An upload over an existing file still leaves that file as it was; STOU keeps its name."""
    name, path = wd
    s = make_server(keep_partial_uploads="yes")
    want = os.urandom(3_000_000)
    f = client(s, name)
    conn = f.transfercmd("STOR new.bin")
    conn.sendall(want[:1_000_000])
    assert wait_until(lambda: sum(os.path.getsize(p) for p in parts(path)) == 1_000_000, 10)
    f.putcmd("ABOR")
    first, second = f.getline(), f.getline()
    conn.close()
    assert first == "426 Transfer aborted; partial file kept, 1000000 bytes.", first
    assert second.startswith("226 "), second
    assert parts(path) == []
    assert f.size("new.bin") == 1_000_000
    assert stor(f, "STOR new.bin", want[1_000_000:], rest=1_000_000).startswith("226")
    assert read(os.path.join(path, "new.bin")) == want

    old = put(os.path.join(path, "old.bin"), b"old content\n")
    conn = f.transfercmd("STOR old.bin")
    conn.sendall(want[:500_000])
    drop_without_close_notify(conn)
    with pytest.raises(ftplib.error_temp, match=r"^426 .*upload discarded"):
        f.voidresp()
    assert read(old) == b"old content\n"

    conn = f.transfercmd("STOU unique.bin")
    conn.sendall(want[:200_000])
    drop_without_close_notify(conn)
    with pytest.raises(ftplib.error_temp, match=r"^426 .*partial file kept, \d+ bytes"):
        f.voidresp()
    kept = os.path.join(path, "unique.bin")
    assert 0 < os.path.getsize(kept) <= 200_000 and read(kept) == want[:os.path.getsize(kept)]
    assert parts(path) == []
    f.quit()
