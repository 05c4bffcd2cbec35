"""Anonymous FTP (issue 4): off by default, read-only, chrooted, its own account, no TLS
required unless configured."""
import ftplib
import io
import os
import time

import pytest

from ftpsd_fixture import ANON_UID, USERS
from test_processes import session_processes, status


@pytest.fixture(scope="module")
def anon_root(env):
    root = env.path("anon")
    os.makedirs(os.path.join(root, "pub"), exist_ok=True)
    with open(os.path.join(root, "pub", "README"), "w") as fh:
        fh.write("public file\n")
    os.makedirs(os.path.join(root, "incoming"), exist_ok=True)
    os.chown(os.path.join(root, "incoming"), ANON_UID, ANON_UID)
    return root


def plain_ftp(s):
    f = ftplib.FTP(timeout=20)
    f.connect(s.host, s.port)
    return f


def test_anonymous_off_by_default(server):
    f = plain_ftp(server)
    r = server.raw()
    r.reply()
    r.starttls(server.env.cert)
    assert r.cmd("USER anonymous")[0] == 331
    assert r.cmd("PASS guest@example.org")[0] == 530
    r.close()
    f.close()


def test_anonymous_plaintext_read_only(make_server, anon_root):
    s = make_server(anonymous="yes", anon_root=anon_root, require_prot_p="yes")
    f = plain_ftp(s)
    assert f.sendcmd("USER anonymous").startswith("331 Guest login ok")
    assert f.sendcmd("PASS guest@example.org").startswith("230")
    assert f.pwd() == "/"
    assert "pub" in f.nlst()
    out = io.BytesIO()
    f.retrbinary("RETR pub/README", out.write)       # plaintext data: TLS not required here
    assert out.getvalue() == b"public file\n"
    for op in (lambda: f.storbinary("STOR incoming/x", io.BytesIO(b"x")),
               lambda: f.mkd("newdir"), lambda: f.delete("pub/README"),
               lambda: f.rename("pub/README", "pub/R")):
        with pytest.raises(ftplib.error_perm, match="^550"):
            op()
    f.cwd("../../..")
    assert f.pwd() == "/" and "pub" in f.nlst()      # chrooted to anon_root
    f.quit()
    # local users still need TLS
    r = s.raw()
    r.reply()
    assert r.cmd("USER alice")[0] == 530
    r.close()


def test_anonymous_process_identity(make_server, anon_root):
    s = make_server(anonymous="yes", anon_root=anon_root)
    f = plain_ftp(s)
    f.login("ftp", "guest@")
    mon, front, user = session_processes(s, ANON_UID)
    st = status(user)
    assert st["Uid"].split() == [str(ANON_UID)] * 4
    assert os.readlink(f"/proc/{user}/root") == anon_root
    f.quit()


def test_anonymous_tls_required_when_configured(make_server, anon_root):
    s = make_server(anonymous="yes", anon_root=anon_root, anon_require_tls="yes")
    f = plain_ftp(s)
    with pytest.raises(ftplib.error_perm, match="^530"):
        f.sendcmd("USER anonymous")
    f.close()
    g = s.ftps()
    g.login("anonymous", "guest@")
    with pytest.raises(ftplib.error_perm, match="^522"):    # data protection required too
        g.nlst()
    g.quit()


def test_anonymous_uploads_when_allowed(make_server, anon_root):
    s = make_server(anonymous="yes", anon_root=anon_root, anon_write_enable="yes")
    f = plain_ftp(s)
    f.login("anonymous", "guest@")
    f.storbinary("STOR incoming/upload.txt", io.BytesIO(b"anonymous upload"))
    st = os.stat(os.path.join(anon_root, "incoming", "upload.txt"))
    assert st.st_uid == ANON_UID
    with pytest.raises(ftplib.error_perm, match="^550"):     # root itself is not theirs
        f.storbinary("STOR toplevel.txt", io.BytesIO(b"x"))
    # The modes the server gave stay: no SITE CHMOD or UMASK for anonymous users.
    for cmd in ("SITE CHMOD 777 incoming/upload.txt", "SITE UMASK 000"):
        with pytest.raises(ftplib.error_perm,
                           match=r"^550 SITE (CHMOD|UMASK) is not available to anonymous"):
            f.sendcmd(cmd)
    assert os.stat(os.path.join(anon_root, "incoming", "upload.txt")).st_mode & 0o777 == 0o600
    f.quit()


def drop_box(make_server, anon_root, prefix):
    """An anonymous session on a server with anon_write_enable = upload, and a fresh name
    in incoming/ (as given to the server, and its path on disk)."""
    s = make_server(anonymous="yes", anon_root=anon_root, anon_write_enable="upload")
    name = f"{prefix}-{os.getpid()}-{time.time_ns()}.txt"
    f = plain_ftp(s)
    f.login("anonymous", "guest@")
    return f, name, os.path.join(anon_root, "incoming", name)


def test_anonymous_drop_box(make_server, anon_root):
    """anon_write_enable = upload: new files only. A name that exists, APPE and REST+STOR get
    553; DELE, MKD, RNFR and MFMT 550; the upload is the anonymous account's alone (anon_umask
    077) and not downloadable until the admin makes it readable to everyone."""
    f, name, path = drop_box(make_server, anon_root, "drop")
    try:
        assert f.storbinary(f"STOR incoming/{name}", io.BytesIO(b"dropped")).startswith("226")
        st = os.stat(path)
        assert (st.st_uid, st.st_mode & 0o777) == (ANON_UID, 0o600)
        for call in (lambda: f.storbinary(f"STOR incoming/{name}", io.BytesIO(b"replaced")),
                     lambda: f.storbinary(f"APPE incoming/{name}", io.BytesIO(b"appended")),
                     lambda: f.storbinary(f"STOR incoming/r-{name}", io.BytesIO(b"x"), rest=3)):
            with pytest.raises(ftplib.error_perm,
                               match=r"^553 .*anonymous users may only upload new files"):
                call()
        assert open(path, "rb").read() == b"dropped"
        assert not os.path.exists(os.path.join(anon_root, "incoming", "r-" + name))
        for cmd in (f"DELE incoming/{name}", "MKD incoming/sub", f"RNFR incoming/{name}",
                    f"MFMT 20200101000000 incoming/{name}"):
            with pytest.raises(ftplib.error_perm,
                               match=r"^550 Permission denied: anonymous users may only upload"):
                f.sendcmd(cmd)
        assert " MFMT" not in f.sendcmd("FEAT")
        # Not public until the admin says so.
        with pytest.raises(ftplib.error_perm, match=r"^550 .*not a public file"):
            f.retrbinary(f"RETR incoming/{name}", io.BytesIO().write)
        os.chmod(path, 0o644)
        got = io.BytesIO()
        f.retrbinary(f"RETR incoming/{name}", got.write)
        assert got.getvalue() == b"dropped"
        # STOU makes a new name beside an existing one.
        resp = f.storbinary(f"STOU incoming/{name}", io.BytesIO(b"unique"))
        assert resp.startswith("226")
        assert open(path + ".1", "rb").read() == b"unique"
        f.quit()
    finally:
        for p in (path, path + ".1"):
            if os.path.exists(p):
                os.unlink(p)


def test_anonymous_drop_box_never_replaces_a_file_made_during_the_upload(make_server,
                                                                         anon_root):
    """The name was free when the upload began and is taken when it ends: the file there
    stays and the upload gets 553."""
    f, name, path = drop_box(make_server, anon_root, "race")
    try:
        conn = f.transfercmd(f"STOR incoming/{name}")
        conn.sendall(b"late upload")
        with open(path, "wb") as fh:
            fh.write(b"first")
        conn.close()
        with pytest.raises(ftplib.error_perm, match=r"^553 .*a file of that name exists now"):
            f.voidresp()
        assert open(path, "rb").read() == b"first"
        assert [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".ftpsd-")] == []
        f.quit()
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_anonymous_full_write_and_anon_umask(make_server, anon_root):
    """anon_write_enable = yes: changes too (DELE); anon_umask 022 makes uploads public."""
    s = make_server(anonymous="yes", anon_root=anon_root, anon_write_enable="yes",
                    anon_umask="022")
    name = f"full-{os.getpid()}-{time.time_ns()}.txt"
    f = plain_ftp(s)
    f.login("anonymous", "guest@")
    f.storbinary(f"STOR incoming/{name}", io.BytesIO(b"public"))
    assert os.stat(os.path.join(anon_root, "incoming", name)).st_mode & 0o777 == 0o644
    got = io.BytesIO()
    f.retrbinary(f"RETR incoming/{name}", got.write)
    assert got.getvalue() == b"public"
    assert f.delete(f"incoming/{name}").startswith("250")
    f.quit()


def test_anonymous_transfers_in_the_xferlog(make_server, anon_root, env):
    """xferlog(5): an anonymous transfer has access mode 'a' and the identity given as the
    password for user; it said 'r' and the anon_user account ("ftp"), as for a real user.
    The identity is client text: spaces, controls and invalid UTF-8 become '_'."""
    import time
    path = env.path("xferlog-anon")
    s = make_server(anonymous="yes", anon_root=anon_root, xferlog_file=path)
    f = plain_ftp(s)
    f.sendcmd("USER anonymous")
    f.sendcmd("PASS guest me@example.org\x1b")
    f.retrbinary("RETR pub/README", io.BytesIO().write)
    f.quit()
    deadline = time.time() + 5
    lines = []
    while time.time() < deadline and not lines:
        lines = open(path).read().splitlines() if os.path.exists(path) else []
        time.sleep(0.1)
    assert len(lines) == 1, lines
    fl = lines[0].split()
    assert len(fl) == 18, fl
    assert fl[8].endswith("/pub/README") and fl[11] == "o"
    assert fl[12:] == ["a", "guest_me@example.org_", "ftp", "0", "*", "c"], fl
