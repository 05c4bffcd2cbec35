"""Listings of big directories: what one costs the user process in memory, and
max_list_entries, the bound on how many entries one listing may gather."""
import ftplib
import os
import shutil

import pytest

from ftpsd_fixture import BINARY, USERS, sanitized
from test_processes import session_processes, status


def fill(directory, count, prefix="f"):
    os.makedirs(directory, exist_ok=True)
    for i in range(count):
        # Long-ish names, as real archives have: the listing text is most of the cost.
        open(os.path.join(directory, f"{prefix}-{i:07d}-some-longer-file-name.dat"), "w").close()


@pytest.fixture
def big(make_server):
    def start(count, **conf):
        s = make_server(**conf)
        d = os.path.join(s.env.home("alice"), "big")
        shutil.rmtree(d, ignore_errors=True)
        fill(d, count)
        uid = USERS["alice"][0]
        for p in (d, *(os.path.join(d, n) for n in os.listdir(d))):
            os.lchown(p, uid, uid)
        return s, d
    made = []
    yield lambda count, **conf: made.append(start(count, **conf)) or made[-1]
    for _, d in made:
        shutil.rmtree(d, ignore_errors=True)


def peak_kib(pid):
    return int(status(pid)["VmHWM"].split()[0])


def test_big_listing_memory_is_bounded(big):
    """A 100,000-entry LIST and MLSD: the listing text goes to the memory file as it is made
    and only the names are kept for sorting, so the user process's peak memory grows by a
    small part of the 8-10 MB each listing sends (it grew by ~30 MB)."""
    s, _ = big(100_000)
    f = s.ftps_reuse("alice")
    try:
        _, _, user = session_processes(s, USERS["alice"][0])
        before = peak_kib(user)
        lines = []
        f.retrlines("LIST big", lines.append)
        assert len(lines) == 100_000
        assert lines[0].endswith(" f-0000000-some-longer-file-name.dat")   # sorted
        assert lines[-1].endswith(" f-0099999-some-longer-file-name.dat")
        facts = []
        f.retrlines("MLSD big", facts.append)
        assert len(facts) == 100_001                                     # and type=cdir
        grown = peak_kib(user) - before
        # make check-asan: ASan's allocator holds freed memory in quarantine and pads every
        # block, so its peak says nothing about the listing's.
        if not sanitized(BINARY):
            assert grown < 12 * 1024, f"the user process's peak memory grew by {grown} KiB"
    finally:
        f.close()


def test_max_list_entries(big):
    """More entries than max_list_entries: 451 naming the limit, no partial listing (a client
    mirroring with deletion would take missing entries for deleted files); the session goes
    on. Exactly the limit lists. Only what the listing would show counts: a pattern's
    matches, and without -a no dot files."""
    s, d = big(20, max_list_entries=20)
    open(os.path.join(d, ".hidden"), "w").close()
    f = s.ftps_reuse("alice")
    try:
        lines = []
        f.retrlines("LIST big", lines.append)                  # 20 entries: the limit
        assert len(lines) == 20
        names = f.nlst("big/f-000001*")
        assert len(names) == 10
        for cmd in ("LIST -a big", "MLSD big", "NLST -a big"):
            with pytest.raises(Exception) as e:
                f.retrlines(cmd, lines.append)
            assert str(e.value).startswith("451 "), (cmd, e.value)
            assert "max_list_entries" in str(e.value) and "20" in str(e.value)
        assert f.voidcmd("NOOP").startswith("200")
        assert len(f.nlst("big")) == 20
    finally:
        f.close()


def test_max_list_entries_stat(big):
    """STAT of a directory over the limit gets the same refusal, on the control connection."""
    s, d = big(5, max_list_entries=4)
    f = s.ftps_reuse("alice")
    try:
        with pytest.raises(Exception) as e:
            f.sendcmd("STAT big")
        assert str(e.value).startswith("451 ") and "max_list_entries" in str(e.value)
        assert f.sendcmd("STAT big/f-0000001-some-longer-file-name.dat").startswith("213")
    finally:
        f.close()


def test_directory_read_error_is_not_a_short_listing(make_server, env):
    """readdir failing part way (EIO, here from tests/lib/readdir_fault_shim.c at the entry
    "ftpsd-eio"): an error reply for LIST, NLST and MLSD, where the entries read so far went out
    with a 226 as if they were the whole directory."""
    s = make_server(prefix=["env", "LD_PRELOAD=" + env.shim_preload("readdir_fault_shim")])
    uid = USERS["alice"][0]
    d = os.path.join(env.home("alice"), "eio")
    shutil.rmtree(d, ignore_errors=True)
    fill(d, 50)
    open(os.path.join(d, "ftpsd-eio"), "w").close()
    for p in (d, *(os.path.join(d, n) for n in os.listdir(d))):
        os.lchown(p, uid, uid)
    try:
        f = s.ftps_reuse("alice")
        for cmd in ("LIST eio", "NLST eio", "MLSD eio"):
            with pytest.raises(ftplib.error_perm, match=r"^550 .*Input/output error"):
                f.retrlines(cmd, lambda line: None)
        assert f.sendcmd("NOOP").startswith("200")
        f.quit()
    finally:
        shutil.rmtree(d, ignore_errors=True)
