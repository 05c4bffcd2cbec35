"""max_rate and anon_max_rate: each transfer of a session goes at most that fast, downloads and
uploads, under PROT P and PROT C; the other kind of session is not bound."""
import ftplib
import io
import os
import time

import pytest

from ftpsd_fixture import USERS

RATE = 400_000
SIZE = 1_200_000  # 3 s at RATE; a tenth of a second may go ahead, so at least 2.7 s


def timed(op):
    t0 = time.monotonic()
    op()
    return time.monotonic() - t0


def session(s, prot):
    f = s.ftps_reuse("alice")
    if prot == "C":
        f.prot_c()
    return f


@pytest.mark.parametrize("prot", ["P", "C"])
def test_max_rate_binds_downloads_and_uploads(make_server, env, prot):
    s = make_server(max_rate=RATE, require_prot_p="no")
    data = os.urandom(SIZE)
    home = env.home("alice")
    name = f"rate-{prot}.bin"
    with open(os.path.join(home, name), "wb") as fh:
        fh.write(data)
    os.chown(os.path.join(home, name), USERS["alice"][0], USERS["alice"][0])
    f = session(s, prot)
    got = io.BytesIO()
    t = timed(lambda: f.retrbinary(f"RETR {name}", got.write))
    assert got.getvalue() == data
    assert 2.7 <= t < 8, t
    t = timed(lambda: f.storbinary(f"STOR up-{name}", io.BytesIO(data)))
    with open(os.path.join(home, f"up-{name}"), "rb") as fh:
        assert fh.read() == data
    assert 2.7 <= t < 8, t
    f.quit()
    os.unlink(os.path.join(home, name))
    os.unlink(os.path.join(home, f"up-{name}"))


def test_anon_max_rate_binds_only_anonymous_sessions(make_server, env):
    root = env.path("anon-rate")
    os.makedirs(root, exist_ok=True)
    data = os.urandom(SIZE)
    with open(os.path.join(root, "file.bin"), "wb") as fh:
        fh.write(data)
    with open(os.path.join(env.home("alice"), "file.bin"), "wb") as fh:
        fh.write(data)
    s = make_server(anonymous="yes", anon_root=root, anon_max_rate=RATE)
    f = ftplib.FTP(timeout=20)
    f.connect(s.host, s.port)
    f.login("anonymous", "guest@example.org")
    got = io.BytesIO()
    t = timed(lambda: f.retrbinary("RETR file.bin", got.write))
    assert got.getvalue() == data and 2.7 <= t < 8, t
    f.quit()
    f = s.ftps_reuse("alice")
    t = timed(lambda: f.retrbinary("RETR file.bin", lambda b: None))
    assert t < 2, t
    f.quit()
    # and max_rate does not bind anonymous sessions
    s = make_server(anonymous="yes", anon_root=root, max_rate=RATE)
    f = ftplib.FTP(timeout=20)
    f.connect(s.host, s.port)
    f.login("anonymous", "guest@example.org")
    t = timed(lambda: f.retrbinary("RETR file.bin", lambda b: None))
    assert t < 2, t
    f.quit()
    os.unlink(os.path.join(env.home("alice"), "file.bin"))
