"""Certificate login and client-certificate policy (issue 4): a test CA, certificates for
mapped, unmapped, revoked, expired and foreign users, 232 logins, 530 on a mismatch, PAM's
account and session stages for certificate logins, and the data connection's certificate."""
import ftplib
import glob
import io
import os
import re
import shutil
import socket
import ssl
import subprocess

import pytest

from ftpsd_fixture import (BINARY, LIBDIR, NOPRIV, PAM_MATRIX, USERS, ReusingFTP_TLS, sanitized,
                           wrapper_env)

CA_CNF = """
[ca]
default_ca = test_ca
[test_ca]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/newcerts
serial = {d}/serial
crlnumber = {d}/crlnumber
default_md = sha256
policy = anything
copy_extensions = copy
default_crl_days = 2
unique_subject = no
preserve = yes
[anything]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied
[client]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = clientAuth
"""


def run(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, **kw)


class CertAuthority:
    def __init__(self, d, name):
        self.d = d
        os.makedirs(f"{d}/newcerts", exist_ok=True)
        open(f"{d}/index.txt", "w").close()
        open(f"{d}/serial", "w").write("1000\n")
        open(f"{d}/crlnumber", "w").write("1000\n")
        self.cnf = f"{d}/ca.cnf"
        open(self.cnf, "w").write(CA_CNF.format(d=d))
        self.cert, self.key = f"{d}/ca.pem", f"{d}/ca.key"
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "3", "-subj", f"/C=US/O=Test Lab/CN={name}", "-keyout", self.key,
            "-out", self.cert)

    def issue(self, name, subject, san=None, start=None, end=None):
        key, csr, cert = (f"{self.d}/{name}.key", f"{self.d}/{name}.csr", f"{self.d}/{name}.pem")
        args = ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-subj", subject, "-keyout", key, "-out", csr]
        if san:
            args += ["-addext", f"subjectAltName={san}"]
        run(*args)
        args = ["openssl", "ca", "-batch", "-config", self.cnf, "-extensions", "client",
                "-cert", self.cert, "-keyfile", self.key, "-in", csr, "-out", cert, "-notext"]
        args += ["-startdate", start, "-enddate", end] if start else ["-days", "2"]
        run(*args)
        return cert, key

    def revoke(self, cert):
        run("openssl", "ca", "-config", self.cnf, "-cert", self.cert, "-keyfile", self.key,
            "-revoke", cert)

    def crl(self, path):
        run("openssl", "ca", "-config", self.cnf, "-cert", self.cert, "-keyfile", self.key,
            "-gencrl", "-out", path)
        return path


@pytest.fixture(scope="module")
def pki(env):
    ca = CertAuthority(env.path("pki"), "Test Lab CA")
    other = CertAuthority(env.path("pki-other"), "Other CA")
    p = {
        "ca": ca,
        "alice": ca.issue("alice", "/C=US/O=Test Lab/OU=Staff/CN=alice"),
        "bob": ca.issue("bob", "/C=US/O=Test Lab/OU=Students/CN=bob"),
        "carol": ca.issue("carol", "/C=US/O=Test Lab/OU=Guests/CN=Carol Jones",
                          san="email:cj@example.org,email:carol@students.example.edu"),
        "nobody": ca.issue("nobody", "/C=US/O=Test Lab/OU=Staff/CN=nobody here"),
        "revoked": ca.issue("revoked", "/C=US/O=Test Lab/OU=Staff/CN=alice"),
        "expired": ca.issue("expired", "/C=US/O=Test Lab/OU=Staff/CN=alice",
                            start="20200101000000Z", end="20200102000000Z"),
        "foreign": other.issue("foreign", "/C=US/O=Test Lab/OU=Staff/CN=alice"),
    }
    ca.revoke(p["revoked"][0])
    p["crl"] = ca.crl(env.path("pki", "crl.pem"))
    p["map"] = env.path("pki", "certmap")
    with open(p["map"], "w") as fh:
        fh.write('# staff by exact subject\n'
                 'subject "CN=alice,OU=Staff,O=Test Lab,C=US" alice\n'
                 'issuer "CN=Test Lab CA,O=Test Lab,C=US" subject /CN=([a-z]+),OU=Students,O=Test Lab,C=US/ \\1\n'
                 'email /(.*)@students\\.example\\.edu/ \\1\n')
    # A PAM service whose account stage refuses bob, and whose session stage records the
    # environment ftpsd gave PAM.
    p["pamenv"] = env.path("pki", "pamenv")
    script = env.path("pki", "dump-env.sh")
    with open(script, "w") as fh:
        fh.write(f'#!/bin/sh\nenv | grep ^FTPSD_ > {p["pamenv"]}-$PAM_USER\nexit 0\n')
    os.chmod(script, 0o755)
    passdb = env.path("pki", "passdb")
    with open(passdb, "w") as fh:
        fh.write("".join(f"{u}:{pw}:ftpsd-cert\n" for u, (_, pw) in USERS.items()))
    os.chmod(passdb, 0o600)
    with open(os.path.join(env.pamdir, "ftpsd-cert"), "w") as fh:
        fh.write(f"auth required {PAM_MATRIX} passdb={passdb}\n"
                 f"account required {LIBDIR}/security/pam_succeed_if.so user != bob\n"
                 f"account required {PAM_MATRIX} passdb={passdb}\n"
                 f"session required {PAM_MATRIX} passdb={passdb}\n"
                 f"session optional {LIBDIR}/security/pam_exec.so {script}\n")
    return p


def cert_server(make_server, pki, **extra):
    conf = dict(tls_client_cert="optional", tls_ca_file=pki["ca"].cert, tls_crl_file=pki["crl"],
                cert_map_file=pki["map"], cert_login="cert", pam_service="ftpsd-cert")
    conf.update(extra)
    return make_server(**conf)


def client(s, pki, who=None, reuse=True):
    ctx = ssl.create_default_context(cafile=s.env.cert)
    ctx.check_hostname = False
    if who:
        ctx.load_cert_chain(*pki[who])
    f = (ReusingFTP_TLS if reuse else ftplib.FTP_TLS)(context=ctx, timeout=20)
    f.connect(s.host, s.port)
    f.auth()
    return f


def test_mapped_certificate_logs_in_with_232(make_server, pki):
    s = cert_server(make_server, pki)
    f = client(s, pki, "alice")
    resp = f.sendcmd("USER alice")
    assert resp.startswith("232 ")                                   # L-10, T-38
    assert f.pwd() == "/"
    f.prot_p()
    f.storbinary("STOR by-cert.txt", io.BytesIO(b"certificate login\n"))
    out = io.BytesIO()
    f.retrbinary("RETR by-cert.txt", out.write)
    assert out.getvalue() == b"certificate login\n"
    f.quit()
    env_dump = open(pki["pamenv"] + "-alice").read()
    assert "FTPSD_CLIENT_DN=CN=alice,OU=Staff,O=Test Lab,C=US" in env_dump
    assert "FTPSD_CLIENT_ISSUER=CN=Test Lab CA,O=Test Lab,C=US" in env_dump
    assert "FTPSD_AUTH=certificate" in env_dump


def test_ca_directory_instead_of_a_file(make_server, pki, env):
    """tls_ca_path, an `openssl rehash` directory: OpenSSL reads it only while it verifies, which
    the front, chrooted to empty_dir, cannot do; it is read at start now. The handshake used to
    fail for every client certificate."""
    d = env.path("pki", "cadir")
    if not os.path.isdir(d):
        os.mkdir(d)
        shutil.copy(pki["ca"].cert, os.path.join(d, "ca.pem"))
        subprocess.run(["openssl", "rehash", d], check=True, capture_output=True)
    s = make_server(tls_client_cert="optional", tls_ca_path=d, tls_crl_file=pki["crl"],
                    cert_map_file=pki["map"], cert_login="cert", pam_service="ftpsd-cert")
    f = client(s, pki, "alice")
    assert f.sendcmd("USER alice").startswith("232 ")
    f.quit()
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        client(s, pki, "revoked").sendcmd("USER alice")


def test_crl_in_the_ca_directory_is_checked(make_server, pki, env):
    """A CRL in tls_ca_path (its "<hash>.r0" entry) revokes, with no tls_crl_file: it was read
    into the store but never consulted (OpenSSL checks CRLs only when told to), so the revoked
    certificate logged in with 232. Both checks use it: the front's handshake and the
    monitor's second look."""
    d = env.path("pki", "cadir-crl")
    if not os.path.isdir(d):
        os.mkdir(d)
        shutil.copy(pki["ca"].cert, os.path.join(d, "ca.pem"))
        shutil.copy(pki["crl"], os.path.join(d, "crl.pem"))
        subprocess.run(["openssl", "rehash", d], check=True, capture_output=True)
    assert any(n.endswith(".r0") for n in os.listdir(d))
    s = make_server(tls_client_cert="optional", tls_ca_path=d, cert_map_file=pki["map"],
                    cert_login="cert", pam_service="ftpsd-cert")
    f = client(s, pki, "alice")
    assert f.sendcmd("USER alice").startswith("232 ")
    f.quit()
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        client(s, pki, "revoked").sendcmd("USER alice")


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed (make deps)")
@pytest.mark.skipif(sanitized(BINARY), reason="an ASan build cannot run under strace")
def test_monitor_checks_the_chain_in_a_sandboxed_child(make_server, pki, env):
    """The chain the front passes on is client bytes: the monitor (root, unfiltered) has it
    parsed and verified by a child that drops to nopriv_user in empty_dir first. Seen as a
    second process that enters a root and becomes nopriv_user (the front is the first) for a
    certificate login, and none for a password login."""
    def dropped_to_nopriv(base):
        """The traced processes that entered a root (empty_dir: drop.c chdirs, then chroots
        ".") and became nopriv_user."""
        found = []
        for path in glob.glob(base + ".*"):
            with open(path, errors="replace") as fh:
                text = fh.read()
            if re.search(r'^chroot\("\."\)\s+= 0$', text, re.M) and re.search(
                    r"^setresuid\(%d, %d, %d\)\s+= 0$" % ((NOPRIV[1],) * 3), text, re.M):
                found.append(path)
        return found

    for who, want in (("alice", 2), (None, 1)):
        base = env.path(f"certchk-{who}-{os.urandom(3).hex()}")
        s = cert_server(make_server, pki, prefix=["strace", "-f", "-ff", "-qq", "-o", base, "-e",
                                                  "trace=chroot,setresuid"])
        f = client(s, pki, who)
        if who:
            assert f.sendcmd("USER alice").startswith("232 ")
        else:
            f.login("alice", USERS["alice"][1])
        f.quit()
        s.stop()
        found = dropped_to_nopriv(base)
        assert len(found) == want, found


def test_regex_and_email_rules(make_server, pki):
    s = cert_server(make_server, pki)
    f = client(s, pki, "carol")
    assert f.sendcmd("USER carol").startswith("232 ")                # SAN email, 2nd address
    f.quit()


def test_certificate_of_another_user_is_refused(make_server, pki):
    s = cert_server(make_server, pki)
    f = client(s, pki, "alice")
    with pytest.raises(ftplib.error_perm, match="^530"):
        f.sendcmd("USER carol")
    f.close()


def test_account_stage_runs_for_certificate_logins(make_server, pki):
    """bob's certificate maps to bob, but PAM's account stage refuses him."""
    s = cert_server(make_server, pki)
    f = client(s, pki, "bob")
    with pytest.raises(ftplib.error_perm, match="^530"):
        f.sendcmd("USER bob")
    f.close()


def sign(d, name, subject, ca_cert, ca_key, is_ca):
    """A key and certificate for subject signed by ca_cert, as a CA or as a client."""
    key, csr, cert, ext = (f"{d}/{name}.key", f"{d}/{name}.csr", f"{d}/{name}.pem",
                           f"{d}/{name}.ext")
    with open(ext, "w") as fh:
        fh.write("basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n" if is_ca
                 else "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                      "extendedKeyUsage=clientAuth\n")
    run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-subj", subject, "-keyout", key, "-out", csr)
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
        "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert)
    return cert, key


def test_issuer_rule_needs_a_configured_ca_not_a_name(make_server, pki, env, tmp_path):
    """An issuer rule compared only the issuer's name: Other CA (also trusted) signed a sub-CA
    named "Test Lab CA", whose certificate for OU=Students,CN=alice then logged in as alice
    through the rule meant for the real Test Lab CA (232). Now the issuing certificate must be
    one of the configured CA certificates: the forged chain is unmapped (331, a password is
    asked). A real intermediate works when it is configured, not when only the client sends
    it."""
    d = str(tmp_path)
    other = CertAuthority(f"{d}/other", "Other CA")
    fake_ca = sign(d, "fake-ca", "/C=US/O=Test Lab/CN=Test Lab CA", other.cert, other.key, True)
    fake = sign(d, "fake", "/C=US/O=Test Lab/OU=Students/CN=alice", *fake_ca, False)
    sub_ca = sign(d, "sub-ca", "/C=US/O=Test Lab/CN=Lab Sub CA", pki["ca"].cert,
                  pki["ca"].key, True)
    lab = sign(d, "lab", "/C=US/O=Test Lab/OU=Lab/CN=alice", *sub_ca, False)
    for (cert, _), issuer in ((fake, fake_ca[0]), (lab, sub_ca[0])):
        with open(cert, "a") as fh:
            fh.write(open(issuer).read())            # the client sends its chain
    cas = f"{d}/cas.pem"
    with open(cas, "w") as fh:
        fh.write(open(pki["ca"].cert).read() + open(other.cert).read())
    cas_sub = f"{d}/cas-sub.pem"
    with open(cas_sub, "w") as fh:
        fh.write(open(cas).read() + open(sub_ca[0]).read())
    cmap = f"{d}/certmap"
    with open(cmap, "w") as fh:
        fh.write('issuer "CN=Test Lab CA,O=Test Lab,C=US" '
                 'subject /CN=([a-z]+),OU=Students,O=Test Lab,C=US/ \\1\n'
                 'issuer "CN=Lab Sub CA,O=Test Lab,C=US" subject /CN=([a-z]+),OU=Lab,O=Test Lab,C=US/ \\1\n')
    pki2 = dict(pki, fake=fake, lab=lab)
    for ca_file, who, code in ((cas, "fake", "331"), (cas, "lab", "331"),
                               (cas_sub, "lab", "232")):
        s = cert_server(make_server, pki, tls_ca_file=ca_file, tls_crl_file="",
                        cert_map_file=cmap)
        f = client(s, pki2, who)
        assert f.sendcmd("USER alice").startswith(code + " "), (ca_file, who)
        f.close()


def test_unmapped_certificate_and_no_certificate_use_the_password(make_server, pki):
    s = cert_server(make_server, pki)
    for who in ("nobody", None):
        f = client(s, pki, who)
        assert f.sendcmd("USER alice").startswith("331 ")
        assert f.sendcmd(f"PASS {USERS['alice'][1]}").startswith("230 ")
        f.quit()


@pytest.mark.parametrize("who", ["revoked", "expired", "foreign"])
def test_bad_certificates_fail_the_handshake(make_server, pki, who):
    s = cert_server(make_server, pki)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        f = client(s, pki, who)
        f.sendcmd("USER alice")


def test_required_certificate(make_server, pki):
    s = cert_server(make_server, pki, tls_client_cert="required")
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, EOFError)):
        f = client(s, pki, None)
        f.sendcmd("USER alice")
    f = client(s, pki, "alice")
    assert f.sendcmd("USER alice").startswith("232 ")
    f.quit()


def test_cert_plus_password(make_server, pki):
    s = cert_server(make_server, pki, cert_login="cert+password")
    f = client(s, pki, "alice")
    assert f.sendcmd("USER alice").startswith("331 ")
    with pytest.raises(ftplib.error_perm, match="^530"):
        f.sendcmd("PASS wrong")
    f.close()
    f = client(s, pki, "alice")
    f.sendcmd("USER alice")
    assert f.sendcmd(f"PASS {USERS['alice'][1]}").startswith("230 ")
    f.quit()
    f = client(s, pki, None)                                         # no certificate at all
    f.sendcmd("USER alice")
    with pytest.raises(ftplib.error_perm, match="^530"):
        f.sendcmd(f"PASS {USERS['alice'][1]}")
    f.close()


def test_data_connection_certificate_must_match(make_server, pki):
    """T-37: without resumption, a data connection with another certificate is refused."""
    s = cert_server(make_server, pki, require_session_reuse="no")
    f = client(s, pki, "alice", reuse=False)
    f.sendcmd("USER alice")
    f.prot_p()
    f.storbinary("STOR same.txt", io.BytesIO(b"ok"))                # same cert: fine
    other = ssl.create_default_context(cafile=s.env.cert)
    other.check_hostname = False
    other.load_cert_chain(*pki["carol"])
    f.context = other
    with pytest.raises(ftplib.error_perm, match="^522"):
        f.retrbinary("RETR same.txt", io.BytesIO().write)
    assert f.sendcmd("NOOP").startswith("200")
    f.quit()


def test_curl_client_certificate(make_server, pki):
    s = cert_server(make_server, pki)
    cert, key = pki["alice"]
    r = subprocess.run(["curl", "-sS", "--ssl-reqd", "--cacert", s.env.cert, "--cert", cert,
                        "--key", key, "-u", "alice:", "-T", "-", s.url("curl-cert.txt")],
                       input=b"curl with a certificate\n", capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["curl", "-sS", "--ssl-reqd", "--cacert", s.env.cert, "--cert", cert,
                        "--key", key, "-u", "alice:", s.url("curl-cert.txt")],
                       capture_output=True, timeout=30)
    assert r.stdout == b"curl with a certificate\n", r.stderr


def test_check_reports_map_errors(env, pki, tmp_path):
    bad = tmp_path / "badmap"
    bad.write_text('subject "CN=ok" alice\nsubjekt "CN=x" bob\nemail /unterminated alice\n')
    conf = tmp_path / "c.conf"
    conf.write_text(f"tls_cert_file = {env.cert}\ntls_key_file = {env.key}\n"
                    f"nopriv_user = {NOPRIV[0]}\nempty_dir = {env.empty}\n"
                    f"tls_client_cert = optional\ntls_ca_file = {pki['ca'].cert}\n"
                    f"cert_map_file = {bad}\ncert_login = cert\n")
    r = subprocess.run([BINARY, "-t", "-f", str(conf)], capture_output=True, text=True,
                       env=wrapper_env(env))
    assert r.returncode != 0
    assert f"{bad}:2:" in r.stderr and f"{bad}:3:" in r.stderr, r.stderr


def test_cert_login_needs_its_settings(env, tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text(f"tls_cert_file = {env.cert}\ntls_key_file = {env.key}\ncert_login = cert\n")
    r = subprocess.run([BINARY, "-t", "-f", str(conf)], capture_output=True, text=True)
    assert r.returncode != 0 and ":3: cert_login" in r.stderr


def test_certificate_reload_needs_no_restart(make_server, env, tmp_path):
    """Each connection reads the certificate and key: replacing the files takes effect for the
    next connection without restarting anything."""
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")

    def make(cn):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
                        "-keyout", key + ".new", "-out", cert + ".new"], check=True,
                       capture_output=True)
        os.replace(key + ".new", key)
        os.replace(cert + ".new", cert)

    def served_cn(s):
        sock = socket.create_connection((s.host, s.port), timeout=10)
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"AUTH TLS\r\n")
        f.readline()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        t = ctx.wrap_socket(sock)
        der = t.getpeercert(binary_form=True)
        t.close()
        out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"],
                             input=der, capture_output=True).stdout.decode()
        return out.strip().split("=")[-1].strip()

    make("first.example")
    s = make_server(tls_cert_file=cert, tls_key_file=key)
    assert served_cn(s) == "first.example"
    make("second.example")
    assert served_cn(s) == "second.example"
