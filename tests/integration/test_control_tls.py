"""RFC 4217 on the control connection: AUTH, PBSZ, PROT, policy replies, FEAT (rows T, S, G)."""
import os
import socket
import ssl
import time

import pytest

from ftpsd_fixture import USERS




@pytest.mark.parametrize("mech", ["TLS", "TLS-C", "tls", "Tls-c", "SSL", "TLS-P"])
def test_auth_mechanisms_accepted(server, mech):
    r = server.raw()
    r.reply()
    code, lines = r.cmd(f"AUTH {mech}")
    assert code == 234, lines
    ctx = ssl.create_default_context(cafile=server.env.cert)
    ctx.check_hostname = False
    r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost")
    assert r.cmd("NOOP")[0] == 200
    # AUTH SSL / TLS-P imply protected data (PBSZ/PROT already done).
    code, _ = r.cmd("PROT P")
    assert code == 200 if mech.upper() in ("SSL", "TLS-P") else code == 503
    r.close()


@pytest.mark.parametrize("arg,code", [("KERBEROS_V4", 504), ("GSSAPI", 504), ("FOO", 504)])
def test_auth_unknown_mechanism(server, arg, code):
    r = server.raw()
    r.reply()
    assert r.cmd(f"AUTH {arg}")[0] == code
    assert r.cmd("AUTH")[0] == 501
    r.close()


def test_plaintext_after_auth_is_discarded(server):
    """G-24 / CVE-2011-1575: bytes pipelined after AUTH TLS never run as commands."""
    r = server.raw()
    r.reply()
    r.send(b"AUTH TLS\r\nUSER alice\r\n")
    code, _ = r.reply()
    assert code == 234
    ctx = ssl.create_default_context(cafile=server.env.cert)
    ctx.check_hostname = False
    r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost")
    # If "USER alice" had run, PASS would be accepted; it must say USER first.
    assert r.cmd(f"PASS {USERS['alice'][1]}")[0] == 503
    r.close()


def test_plaintext_instead_of_handshake_gets_421(server):
    """T-06: the client sends a command instead of a ClientHello."""
    r = server.raw()
    r.reply()
    assert r.cmd("AUTH TLS")[0] == 234
    r.send(b"USER alice\r\n")
    code, lines = r.reply()
    assert code == 421, lines
    r.close()


def test_nothing_after_234_in_plaintext(server):
    """G-29: after 234 the server sends nothing until the handshake."""
    r = server.raw()
    r.reply()
    r.send(b"AUTH TLS\r\n")
    time.sleep(0.3)
    data = r.sock.recv(4096)
    assert data == b"234 Proceed with negotiation.\r\n"
    r.close()


def test_pbsz_prot_sequence(server):
    r = server.raw()
    r.reply()
    assert r.cmd("PBSZ 0")[0] == 503          # S-08 before AUTH
    assert r.cmd("PROT P")[0] == 503          # S-13 before AUTH
    r.starttls(server.env.cert)
    assert r.cmd("PROT P")[0] == 503          # S-12 PROT before PBSZ
    assert r.cmd("PBSZ abc")[0] == 501        # S-11
    assert r.cmd("PBSZ 99999999999")[0] == 501
    assert r.cmd("PBSZ")[0] == 501
    code, lines = r.cmd("PBSZ 16384")         # S-10
    assert code == 200 and lines[0] == "200 PBSZ=0"
    assert r.cmd("pbsz 0") == (200, ["200 PBSZ=0"])
    assert r.cmd("PROT S")[0] == 536          # S-15
    assert r.cmd("PROT E")[0] == 536
    assert r.cmd("PROT X")[0] == 504          # S-16
    assert r.cmd("PROT")[0] == 501
    assert r.cmd("PROT C")[0] == 200          # S-14
    assert r.cmd("prot p")[0] == 200
    assert r.cmd("AUTH TLS")[0] == 503        # S-06 second AUTH
    r.close()


def test_pbsz_prot_before_login_then_login(server):
    """T-44: AUTH, PBSZ, PROT, USER, PASS in the RFC 4217 §12.1 order."""
    r = server.tls_raw()
    assert r.cmd("PBSZ 0")[0] == 200
    assert r.cmd("PROT P")[0] == 200
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd(f"PASS {USERS['alice'][1]}")[0] == 230
    r.close()


def test_feat_before_and_after_login(server):
    r = server.raw()
    r.reply()
    code, lines = r.cmd("FEAT")
    assert code == 211 and lines[-1] == "211 End"
    feats = [l for l in lines[1:-1]]
    for f in (" AUTH TLS", " PBSZ", " PROT", " EPSV", " SIZE", " MDTM", " REST STREAM", " UTF8"):
        assert f in feats, feats
    assert all(l.startswith(" ") and not l.startswith("  ") for l in feats)
    assert r.cmd("FEAT x")[0] == 501
    r.starttls(server.env.cert)
    r.login("alice")
    code, lines2 = r.cmd("FEAT")
    assert code == 211 and " AUTH TLS" in lines2 and " PBSZ" in lines2 and " PROT" in lines2
    r.close()


def test_login_requires_tls(server):
    """L-08, L-09: USER and PASS in plaintext get 530; the password is never checked."""
    r = server.raw()
    r.reply()
    assert r.cmd("USER alice")[0] == 530
    assert r.cmd(f"PASS {USERS['alice'][1]}")[0] in (503, 530)
    assert r.cmd("LIST")[0] == 530
    r.close()


def test_plaintext_login_allowed_when_configured(make_server):
    s = make_server(require_tls_login="no", require_prot_p="no")
    r = s.raw()
    r.reply()
    assert r.cmd("USER alice")[0] == 331
    assert r.cmd(f"PASS {USERS['alice'][1]}")[0] == 230
    assert r.cmd("AUTH TLS")[0] == 534  # L-14: no late AUTH
    r.close()


def test_ccc_replies(server):
    r = server.raw()
    r.reply()
    assert r.cmd("CCC")[0] == 533
    r.starttls(server.env.cert)
    assert r.cmd("CCC")[0] == 534
    r.login("alice")
    assert r.cmd("CCC")[0] == 534
    r.close()


def test_security_data_commands(server):
    r = server.tls_raw()
    for c in ("ADAT x", "MIC x", "CONF x", "ENC x"):
        assert r.cmd(c)[0] == 502
    r.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_refused(server, version):
    """T-39 / RFC 8996."""
    r = server.raw()
    r.reply()
    assert r.cmd("AUTH TLS")[0] == 234
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.minimum_version = version
        ctx.maximum_version = version
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer the old version")
    with pytest.raises((ssl.SSLError, OSError)):
        ctx.wrap_socket(r.sock, server_hostname="localhost")
    r.close()


def test_tls13_and_tls12_control(server):
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        r = server.raw()
        r.reply()
        r.cmd("AUTH TLS")
        ctx = ssl.create_default_context(cafile=server.env.cert)
        ctx.check_hostname = False
        ctx.minimum_version = ctx.maximum_version = v
        r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost")
        assert r.sock.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[v]
        r.login("alice")
        r.close()


def implicit_session(s):
    """A TLS connection to an implicit_tls server, its greeting read: (socket, reader)."""
    sock = socket.create_connection((s.host, s.port), timeout=10)
    ctx = ssl.create_default_context(cafile=s.env.cert)
    ctx.check_hostname = False
    t = ctx.wrap_socket(sock, server_hostname="localhost")
    f = t.makefile("rb")
    assert f.readline().startswith(b"220 ")
    return t, f


def test_implicit_tls(make_server):
    s = make_server(implicit_tls="yes")
    t, f = implicit_session(s)
    t.sendall(b"AUTH TLS\r\n")
    assert f.readline().startswith(b"503 ")           # I-03
    t.sendall(b"PBSZ 0\r\nPROT P\r\n")
    assert f.readline().startswith(b"200 ")
    assert f.readline().startswith(b"200 ")
    t.close()


def test_implicit_tls_feat_has_no_ccc(make_server):
    """Implicit TLS refuses CCC whatever allow_ccc says (the port is TLS only), so FEAT does
    not offer it; it did."""
    s = make_server(implicit_tls="yes", allow_ccc="yes")
    t, f = implicit_session(s)
    t.sendall(b"FEAT\r\n")
    lines = [f.readline()]
    while not lines[-1].startswith(b"211 "):
        lines.append(f.readline())
    assert b" PROT\r\n" in lines and b" CCC\r\n" not in lines, lines
    t.sendall(b"CCC\r\n")
    assert f.readline().startswith(b"534 ")
    t.close()


def test_implicit_tls_plaintext_client(make_server):
    """I-02: no plaintext greeting on the implicit port."""
    s = make_server(implicit_tls="yes")
    sock = socket.create_connection((s.host, s.port), timeout=10)
    sock.sendall(b"USER alice\r\n")
    sock.settimeout(10)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    assert b"220" not in data
    sock.close()


def test_curl_ftps_implicit(make_server, tmp_path):
    s = make_server(implicit_tls="yes")
    p = tmp_path / "x"
    (p).write_bytes(b"implicit\n")
    s.curl("-T", str(p), f"ftps://localhost:{s.port}/implicit.txt")
    r = s.curl(f"ftps://localhost:{s.port}/implicit.txt")
    assert r.stdout == b"implicit\n"


def test_encrypted_key_is_refused_not_prompted_for(make_server, env, tmp_path):
    """An encrypted tls_key_file: OpenSSL's default prompt read the passphrase from stdin,
    which is the client's socket. The greeting waited for the client's first line, which was
    taken as the passphrase (a guess per connection, told right or wrong by AUTH TLS). Now
    no passphrase is ever asked for: ftpsd -t says the key is encrypted, and a session greets
    at once and answers AUTH TLS with 431."""
    import subprocess
    from ftpsd_fixture import BINARY, wrapper_env
    key = str(tmp_path / "encrypted.key")
    subprocess.run(["openssl", "pkey", "-in", env.key, "-aes256", "-passout", "pass:hunter2",
                    "-out", key], check=True, capture_output=True)
    os.chmod(key, 0o600)
    s = make_server(tls_key_file=key)
    r = subprocess.run([BINARY, "-t", "-f", s.conf_path], input="hunter2\n", text=True,
                       capture_output=True, env=wrapper_env(env), timeout=20)
    assert r.returncode == 1 and "encrypted" in r.stderr and key in r.stderr, r
    assert "pass phrase" not in r.stderr + r.stdout
    c = s.raw(timeout=5)
    assert c.reply()[0] == 220                      # without sending anything first
    c.send(b"hunter2\r\n")
    assert c.reply()[0] == 500
    code, text = c.cmd("AUTH TLS")
    assert code == 431, text
    c.close()
