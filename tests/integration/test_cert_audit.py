"""Audit of certificate login end to end with real clients: validity, trust, chains and depth,
CRLs, RFC 2253 DN matching, SAN e-mail/UPN, cert_login modes and their reply codes, TLS 1.2
and 1.3, resumed data connections, renegotiation, and curl / lftp / ftplib / s_client."""
import datetime
import ftplib
import io
import os
import socket
import ssl
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ftpsd_fixture import LIBDIR, PAM_MATRIX, ROOT, USERS, ReusingFTP_TLS

NOW = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
DAY = datetime.timedelta(days=1)
UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
SSL_FAIL = (ssl.SSLError, ConnectionResetError, BrokenPipeError, EOFError, ConnectionAbortedError)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def name(*rdns):
    """rdns: (oid, value) or (oid, value, asn1type) or a list of those (a multi-valued RDN),
    least specific first (DER order)."""
    out = []
    for r in rdns:
        parts = r if isinstance(r, list) else [r]
        attrs = [x509.NameAttribute(p[0], p[1], _type=p[2]) if len(p) > 2
                 else x509.NameAttribute(p[0], p[1]) for p in parts]
        out.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(out)


class PKI:
    """Certificates written as PEM files under d, made with the cryptography package."""

    def __init__(self, d):
        self.d = d
        os.makedirs(d, exist_ok=True)
        self.n = 0

    def _path(self, stem):
        self.n += 1
        return os.path.join(self.d, f"{stem}-{self.n}")

    def ca(self, cn, parent=None, not_after=None):
        key = _key()
        subj = name((NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Audit"),
                    (NameOID.COMMON_NAME, cn))
        issuer_name, issuer_key = (parent["name"], parent["key"]) if parent else (subj, key)
        b = (x509.CertificateBuilder().subject_name(subj).issuer_name(issuer_name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(NOW - DAY).not_valid_after(not_after or NOW + 3 * DAY)
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False))
        cert = b.sign(issuer_key, hashes.SHA256())
        p = self._path("ca")
        with open(p + ".pem", "wb") as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
        return {"cert": cert, "key": key, "name": subj, "pem": p + ".pem", "parent": parent}

    def leaf(self, ca, subject, san=(), not_before=None, not_after=None, eku=True,
             chain=True, extra=()):
        """A client certificate; its PEM holds the chain up to (not including) the root when
        chain is true, followed by the certificates in extra."""
        key = _key()
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca["name"])
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(not_before or NOW - DAY).not_valid_after(not_after or NOW + 2 * DAY)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        if eku is True:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        elif eku:
            b = b.add_extension(x509.ExtendedKeyUsage(eku), False)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(list(san)), False)
        cert = b.sign(ca["key"], hashes.SHA256())
        p = self._path("leaf")
        with open(p + ".pem", "wb") as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
            c = ca
            while chain and c and c["parent"]:
                fh.write(c["cert"].public_bytes(serialization.Encoding.PEM))
                c = c["parent"]
            for e in extra:
                fh.write(e.public_bytes(serialization.Encoding.PEM))
        with open(p + ".key", "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        return p + ".pem", p + ".key", cert

    def crl(self, ca, revoked=(), last=None, nxt=None):
        b = (x509.CertificateRevocationListBuilder().issuer_name(ca["name"])
             .last_update(last or NOW - DAY).next_update(nxt or NOW + 2 * DAY))
        for c in revoked:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                          .serial_number(c.serial_number)
                                          .revocation_date(NOW - DAY).build())
        crl = b.sign(ca["key"], hashes.SHA256())
        p = self._path("crl") + ".pem"
        with open(p, "wb") as fh:
            fh.write(crl.public_bytes(serialization.Encoding.PEM))
        return p


def staff(cn):
    return name((NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Audit"),
                (NameOID.ORGANIZATIONAL_UNIT_NAME, "Staff"), (NameOID.COMMON_NAME, cn))


@pytest.fixture(scope="module")
def pki(env):
    p = PKI(env.path("audit-pki"))
    root = p.ca("Audit Root")
    return {"p": p, "root": root, "dir": p.d}


@pytest.fixture(scope="module")
def pam(env):
    """A PAM service (pam_matrix) whose session stage records FTPSD_* of each login, and a
    second one with Debian's ftpusers check (pam_listfile in the auth stage, as pam.d/ftpsd)."""
    dump = env.path("audit-pki", "pamenv")
    script = env.path("audit-pki", "dump-env.sh")
    os.makedirs(env.path("audit-pki"), exist_ok=True)
    with open(script, "w") as fh:
        fh.write(f'#!/bin/sh\nenv | grep ^FTPSD_ > {dump}-$PAM_USER\nexit 0\n')
    os.chmod(script, 0o755)
    plain = env.pam_service("audit", [f"{k} required {PAM_MATRIX} passdb={{passdb}}"
                                      for k in ("auth", "account", "session")]
                            + [f"session optional {LIBDIR}/security/pam_exec.so {script}"])
    ftpusers = env.path("audit-pki", "ftpusers")
    with open(ftpusers, "w") as fh:
        fh.write("root\nbob\n")
    # The shipped pam.d/ftpsd's pam_listfile and pam_shells lines, whatever stage they are in,
    # on this list; pam_matrix in place of the common-* stacks.
    shipped = [l.replace("/etc/ftpusers", ftpusers).replace("{", "{{").replace("}", "}}")
               for l in open(os.path.join(ROOT, "pam.d", "ftpsd")).read().splitlines()
               if not l.startswith("#") and ("pam_listfile" in l or "pam_shells" in l)]
    listed = env.pam_service("auditfu", shipped + [f"{k} required {PAM_MATRIX} passdb={{passdb}}"
                                                   for k in ("auth", "account", "session")])
    return {"plain": plain, "ftpusers": listed, "dump": dump}


def write_map(pki, text):
    pki["p"].n += 1
    path = os.path.join(pki["dir"], f"map-{pki['p'].n}")
    with open(path, "w") as fh:
        fh.write(text)
    return path


def srv(make_server, pki, pam, cmap, **extra):
    conf = dict(tls_client_cert="optional", tls_ca_file=pki["root"]["pem"], cert_map_file=cmap,
                cert_login="cert", pam_service=pam["plain"])
    conf.update(extra)
    return make_server(**conf)


def ctx_for(s, cert=None, maxver=None):
    ctx = ssl.create_default_context(cafile=s.env.cert)
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    if maxver:
        ctx.maximum_version = maxver
    return ctx


def connect(s, cert=None, maxver=None, reuse=True):
    f = (ReusingFTP_TLS if reuse else ftplib.FTP_TLS)(context=ctx_for(s, cert, maxver), timeout=20)
    f.connect(s.host, s.port)
    f.auth()
    return f


def user_code(s, cert, user, password=None, maxver=None):
    """Reply codes to USER (and PASS if given and asked for): a list of ints."""
    f = connect(s, cert, maxver)
    codes = []
    try:
        f.putcmd("USER " + user)
        r = f.getmultiline()
        codes.append(int(r[:3]))
        if password is not None and r[0] == "3":
            f.putcmd("PASS " + password)
            codes.append(int(f.getmultiline()[:3]))
    finally:
        f.close()
    return codes


def handshake_fails(s, cert):
    try:
        f = connect(s, cert)
        f.sendcmd("NOOP")
    except SSL_FAIL:
        return True
    except ftplib.Error:
        return False
    f.close()
    return False


def openssl_dn(cert_pem):
    out = subprocess.run(["openssl", "x509", "-in", cert_pem, "-noout", "-subject", "-nameopt",
                          "RFC2253"], capture_output=True, check=True).stdout
    line = out.decode("utf-8", "surrogateescape").rstrip("\n")
    assert line.startswith("subject=")
    return line[len("subject="):]


def map_quote(dn):
    return '"' + dn.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- validity and trust ---------------------------------------------------------------------

def test_validity_and_untrusted_ca(make_server, pki, pam):
    p, root = pki["p"], pki["root"]
    other = p.ca("Stranger CA")
    cmap = write_map(pki, 'subject /CN=([a-z]+),OU=Staff,O=Audit,C=US/ \\1\n')
    s = srv(make_server, pki, pam, cmap)
    good = p.leaf(root, staff("alice"))
    assert user_code(s, good, "alice") == [232]
    expired = p.leaf(root, staff("alice"), not_before=NOW - 10 * DAY, not_after=NOW - 5 * DAY)
    future = p.leaf(root, staff("alice"), not_before=NOW + 5 * DAY, not_after=NOW + 10 * DAY)
    foreign = p.leaf(other, staff("alice"))
    server_only = p.leaf(root, staff("alice"), eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    for c in (expired, future, foreign, server_only):
        assert handshake_fails(s, c)
    no_eku = p.leaf(root, staff("alice"), eku=None)
    assert user_code(s, no_eku, "alice") == [232]


# --- chains ---------------------------------------------------------------------------------

def test_intermediate_chain_root_only_in_ca_file(make_server, pki, pam):
    p, root = pki["p"], pki["root"]
    inter = p.ca("Audit Dept CA", parent=root)
    leaf = p.leaf(inter, staff("alice"))
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    s = srv(make_server, pki, pam, cmap)
    assert user_code(s, leaf, "alice") == [232]
    # Without the intermediate in what the client sends, nothing chains to the root.
    bare = p.leaf(inter, staff("alice"), chain=False)
    assert handshake_fails(s, bare)


@pytest.mark.parametrize("maxver", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_certificate_login_again_on_a_resumed_session(make_server, pki, pam, maxver):
    """REIN, then AUTH TLS resuming the control session: the resumed handshake has no verified
    chain and, from a ticket, carries only the leaf, which alone fails the monitor's check when
    an intermediate signed it (530). The front sends the chain the full handshake verified."""
    p, root = pki["p"], pki["root"]
    inter = p.ca("Audit Rein CA", parent=root)
    leaf = p.leaf(inter, staff("alice"))
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    s = srv(make_server, pki, pam, cmap, allow_rein="yes")
    f = connect(s, leaf, maxver)
    try:
        assert f.sendcmd("USER alice").startswith("232")
        session = f.sock.session
        assert f.sendcmd("REIN").startswith("220")
        f.sock = f.sock.unwrap()
        f.file = f.sock.makefile("r", encoding="utf-8")
        f.voidcmd("AUTH TLS")
        f.sock = f.context.wrap_socket(f.sock, server_hostname="localhost", session=session)
        f.file = f.sock.makefile("r", encoding="utf-8")
        assert f.sock.session_reused, "the control session was not resumed"
        assert f.sendcmd("USER alice").startswith("232")
        assert f.sendcmd("PWD").startswith("257")
    finally:
        f.close()


def test_verify_depth(make_server, pki, pam):
    p, root = pki["p"], pki["root"]
    c = root
    for i in range(3):
        c = p.ca(f"Depth {i}", parent=c)
    leaf = p.leaf(c, staff("alice"))          # leaf + 3 intermediates + root
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    assert handshake_fails(srv(make_server, pki, pam, cmap, tls_verify_depth=2), leaf)
    assert user_code(srv(make_server, pki, pam, cmap, tls_verify_depth=3), leaf, "alice") == [232]


def test_verify_depth_16_as_promised(make_server, pki, pam):
    """tls_verify_depth accepts 1 to 16 intermediates; the front's handshake honours that, and
    the monitor's second check must accept what the handshake accepted."""
    p, root = pki["p"], pki["root"]
    c = root
    for i in range(16):
        c = p.ca(f"Deep {i}", parent=c)
    leaf = p.leaf(c, staff("alice"))          # leaf + 16 intermediates: the most allowed
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    s = srv(make_server, pki, pam, cmap, tls_verify_depth=16)
    assert user_code(s, leaf, "alice") == [232]
    # One more is refused by the handshake itself.
    deeper = p.leaf(p.ca("Deep 16", parent=c), staff("alice"))
    assert handshake_fails(s, deeper)


def test_extra_certificates_sent_by_the_client(make_server, pki, pam):
    """A client may send unrelated certificates after its chain (RFC 8446 §4.4.2 lets the
    server ignore them); OpenSSL's handshake does. Seven of them before the real intermediate
    must not make the monitor's check fail where the handshake passed."""
    p, root = pki["p"], pki["root"]
    inter = p.ca("Audit Extra CA", parent=root)
    junk = [p.ca(f"Junk {i}")["cert"] for i in range(7)]
    # the intermediate after the junk: write the file by hand
    path, key, cert = p.leaf(inter, staff("alice"), chain=False)
    with open(path, "ab") as fh:
        for j in junk:
            fh.write(j.public_bytes(serialization.Encoding.PEM))
        fh.write(inter["cert"].public_bytes(serialization.Encoding.PEM))
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    s = srv(make_server, pki, pam, cmap)
    assert user_code(s, (path, key), "alice") == [232]


# --- CRLs -----------------------------------------------------------------------------------

def test_crl_revoked_expired_and_missing(make_server, pki, pam):
    p, root = pki["p"], pki["root"]
    cmap = write_map(pki, 'subject /CN=([a-z]+),OU=Staff,O=Audit,C=US/ \\1\n')
    good = p.leaf(root, staff("alice"))
    bad = p.leaf(root, staff("alice"))
    crl = p.crl(root, revoked=[bad[2]])
    s = srv(make_server, pki, pam, cmap, tls_crl_file=crl)
    assert user_code(s, good, "alice") == [232]
    assert handshake_fails(s, bad)
    stale = p.crl(root, revoked=[], last=NOW - 5 * DAY, nxt=NOW - 2 * DAY)
    s = srv(make_server, pki, pam, cmap, tls_crl_file=stale)
    assert handshake_fails(s, good)            # an expired CRL proves nothing
    # The chain's intermediate has no CRL: CRL_CHECK_ALL refuses (man: every CA needs one).
    inter = p.ca("Audit CRL-less CA", parent=root)
    sub = p.leaf(inter, staff("alice"))
    s = srv(make_server, pki, pam, cmap, tls_crl_file=crl)
    assert handshake_fails(s, sub)
    both = os.path.join(pki["dir"], "both-crl.pem")
    with open(both, "w") as fh:
        fh.write(open(crl).read() + open(p.crl(inter)).read())
    s = srv(make_server, pki, pam, cmap, tls_crl_file=both)
    assert user_code(s, sub, "alice") == [232]


def test_crl_file_missing_fails_closed(make_server, pki, pam):
    cmap = write_map(pki, 'subject /CN=([a-z]+),OU=Staff,O=Audit,C=US/ \\1\n')
    good = pki["p"].leaf(pki["root"], staff("alice"))
    s = srv(make_server, pki, pam, cmap, tls_crl_file=os.path.join(pki["dir"], "no-such-crl"))
    r = s.raw()
    assert r.reply()[0] == 220
    code, _ = r.cmd("AUTH TLS")
    assert code != 234
    r.close()
    assert good


# --- DN matching ----------------------------------------------------------------------------

DN_CASES = {
    "comma": [(NameOID.COMMON_NAME, "Doe, John")],
    "plus-multi": [[(NameOID.COMMON_NAME, "alice"), (NameOID.USER_ID, "a1")]],
    "plus-in-value": [(NameOID.COMMON_NAME, "a+b")],
    "quote": [(NameOID.COMMON_NAME, 'say "hi"')],
    "hash-lead": [(NameOID.COMMON_NAME, "#hash")],
    "semicolon-lt": [(NameOID.COMMON_NAME, "a;b<c>d=e")],
    "backslash": [(NameOID.COMMON_NAME, "back\\slash")],
    "utf8": [(NameOID.COMMON_NAME, "Jos\u00e9 M\u00fcller")],
    "bmp": [(NameOID.COMMON_NAME, "Jos\u00e9", _ASN1Type.BMPString)],
    "t61": [(NameOID.COMMON_NAME, "Jose", _ASN1Type.T61String)],
    "dup-cn": [(NameOID.COMMON_NAME, "first"), (NameOID.COMMON_NAME, "second")],
    "trailing-space": [(NameOID.COMMON_NAME, "alice ")],
    "leading-space": [(NameOID.COMMON_NAME, " alice")],
    "email-attr": [(NameOID.EMAIL_ADDRESS, "a@example.org"), (NameOID.COMMON_NAME, "x")],
    "unknown-oid": [(ObjectIdentifier("1.2.3.4.5"), "opaque")],
    "long-cjk": [(NameOID.ORGANIZATIONAL_UNIT_NAME, "\u5927\u5b66" * 40),
                 (NameOID.COMMON_NAME, "\u738b" * 20)],
    # over 1023 bytes once printed (each CJK character is 9 bytes: \E5\A4\A7)
    "longer-cjk": [(NameOID.ORGANIZATIONAL_UNIT_NAME, "\u5927\u5b66" * 32),
                   (NameOID.ORGANIZATIONAL_UNIT_NAME, "\u7814\u7a76" * 32),
                   (NameOID.COMMON_NAME, "\u738b\u5c0f\u660e")],
}


def test_dn_written_as_openssl_prints_it(make_server, pki, pam):
    """man ftpsd.conf(5): DNs are written as `openssl x509 -noout -subject -nameopt RFC2253`
    prints them. A rule made that way from each certificate must match it."""
    p, root = pki["p"], pki["root"]
    certs, rules = {}, []
    base = [(NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Audit")]
    for case, rdns in DN_CASES.items():
        c = p.leaf(root, name(*(base + rdns)))
        certs[case] = c
        rules.append(f"subject {map_quote(openssl_dn(c[0]))} alice")
    cmap = write_map(pki, "\n".join(rules) + "\n")
    s = srv(make_server, pki, pam, cmap)
    got = {case: user_code(s, c, "alice") for case, c in certs.items()}
    assert got == {case: [232] for case in certs}


def test_overlong_dn_matches_nothing(make_server, pki, pam):
    """A DN longer than the server keeps (4095 bytes printed) matches no subject rule; it used
    to be cut to 1023 bytes and the cut string matched, here a rule for CN=alice (232)."""
    p, root = pki["p"], pki["root"]
    ous = [(NameOID.ORGANIZATIONAL_UNIT_NAME, "\u5927\u5b66" * 32) for _ in range(8)]
    c = p.leaf(root, name((NameOID.COUNTRY_NAME, "US"), *ous, (NameOID.COMMON_NAME, "alice")))
    assert len(openssl_dn(c[0])) > 4096
    cmap = write_map(pki, 'subject /CN=([a-z]+),.*/ \\1\n')
    s = srv(make_server, pki, pam, cmap)
    assert user_code(s, c, "alice") == [331]
    assert user_code(s, p.leaf(root, staff("alice")), "alice") == [232]


def test_dn_case_is_significant(make_server, pki, pam):
    """ftpsd.conf(5): rules match byte for byte (RFC 5280 §7.1 would compare DirectoryString
    values caseless): a rule "CN=ALICE,..." does not map CN=alice, who is asked for a password
    (331); the rule as openssl prints the DN does."""
    p, root = pki["p"], pki["root"]
    cmap = write_map(pki, 'subject "CN=ALICE,OU=Staff,O=Audit,C=US" alice\n')
    s = srv(make_server, pki, pam, cmap)
    assert user_code(s, p.leaf(root, staff("alice")), "alice") == [331]
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    s = srv(make_server, pki, pam, cmap)
    assert user_code(s, p.leaf(root, staff("alice")), "alice") == [232]


# --- SAN e-mail and UPN ---------------------------------------------------------------------

def upn_name(value):
    raw = value.encode()
    # [0] EXPLICIT UTF8String is what cryptography expects as the OtherName value: UTF8String DER
    der = bytes([0x0c, len(raw)]) + raw
    return x509.OtherName(UPN_OID, der)


def test_san_email_and_upn(make_server, pki, pam):
    p, root = pki["p"], pki["root"]
    cmap = write_map(pki, 'email /([a-z]+)@students\\.example\\.edu/ \\1\n'
                          'upn /([a-z]+)@AD\\.EXAMPLE\\.EDU/ \\1\n'
                          'email /([a-z]+)@staff\\.example\\.edu/ \\1\n')
    s = srv(make_server, pki, pam, cmap)
    several = p.leaf(root, staff("x"), san=[x509.RFC822Name("nobody@elsewhere.org"),
                                            x509.RFC822Name("carol@students.example.edu"),
                                            x509.RFC822Name("alice@students.example.edu")])
    assert user_code(s, several, "carol") == [232]        # first matching value wins
    assert user_code(s, several, "alice") == [530]        # documented: belongs to carol
    u = p.leaf(root, staff("y"), san=[upn_name("bob@AD.EXAMPLE.EDU")])
    assert user_code(s, u, "bob") == [232]
    # the UPN rule comes before the staff e-mail rule: rule order decides, not SAN order
    mixed = p.leaf(root, staff("z"), san=[x509.RFC822Name("alice@staff.example.edu"),
                                          upn_name("carol@AD.EXAMPLE.EDU")])
    assert user_code(s, mixed, "carol") == [232]


def test_san_email_domain_case(make_server, pki, pam):
    """ftpsd.conf(5): an e-mail address's domain is matched byte for byte too (RFC 5280 §7.5
    would compare it caseless): a rule must allow the case the certificate has."""
    p, root = pki["p"], pki["root"]
    c = p.leaf(root, staff("x"), san=[x509.RFC822Name("carol@Students.Example.EDU")])
    cmap = write_map(pki, 'email /([a-z]+)@students\\.example\\.edu/ \\1\n')
    s = srv(make_server, pki, pam, cmap)
    assert user_code(s, c, "carol") == [331]
    cmap = write_map(pki, 'email /([a-z]+)@[Ss]tudents\\.[Ee]xample\\.(edu|EDU)/ \\1\n')
    s = srv(make_server, pki, pam, cmap)
    assert user_code(s, c, "carol") == [232]


# --- map targets ----------------------------------------------------------------------------

def test_map_to_root_unknown_and_ftpusers(make_server, pki, pam):
    p, root = pki["p"], pki["root"]
    cmap = write_map(pki, 'subject /CN=([a-z]+),OU=Staff,O=Audit,C=US/ \\1\n')
    s = srv(make_server, pki, pam, cmap)
    assert user_code(s, p.leaf(root, staff("root")), "root") == [530]
    assert user_code(s, p.leaf(root, staff("ghost")), "ghost") == [530]
    # bob is in the ftpusers list of the shipped PAM file: no login by password (auth stage),
    # nor by certificate, which skips the auth stage (it logged in with 232).
    s = srv(make_server, pki, pam, cmap, pam_service=pam["ftpusers"])
    bob = p.leaf(root, staff("bob"))
    assert user_code(s, None, "bob", USERS["bob"][1]) == [331, 530]
    assert user_code(s, bob, "bob") == [530]


# --- cert_login modes -----------------------------------------------------------------------

def test_cert_login_modes_reply_codes(make_server, pki, pam):
    p, root = pki["p"], pki["root"]
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    alice = p.leaf(root, staff("alice"))
    nobody = p.leaf(root, staff("nobody"))
    pw = USERS["alice"][1]
    table = {}
    for mode in ("no", "cert", "cert+password"):
        extra = {"cert_map_file": ""} if mode == "no" else {}
        s = srv(make_server, pki, pam, cmap, cert_login=mode, **extra)
        for who, c in (("mapped", alice), ("unmapped", nobody), ("none", None)):
            table[(mode, who, "alice")] = user_code(s, c, "alice", pw)
            table[(mode, who, "bad")] = user_code(s, c, "alice", "wrong")
        table[(mode, "mapped", "bob")] = user_code(s, alice, "bob", USERS["bob"][1])
    want = {
        ("no", "mapped", "alice"): [331, 230], ("no", "mapped", "bad"): [331, 530],
        ("no", "unmapped", "alice"): [331, 230], ("no", "unmapped", "bad"): [331, 530],
        ("no", "none", "alice"): [331, 230], ("no", "none", "bad"): [331, 530],
        ("no", "mapped", "bob"): [331, 230],
        ("cert", "mapped", "alice"): [232], ("cert", "mapped", "bad"): [232],
        ("cert", "unmapped", "alice"): [331, 230], ("cert", "unmapped", "bad"): [331, 530],
        ("cert", "none", "alice"): [331, 230], ("cert", "none", "bad"): [331, 530],
        ("cert", "mapped", "bob"): [530],
        ("cert+password", "mapped", "alice"): [331, 230],
        ("cert+password", "mapped", "bad"): [331, 530],
        # no usable certificate: refused, at USER or at PASS; recorded as it is
        ("cert+password", "unmapped", "alice"): [530],
        ("cert+password", "unmapped", "bad"): [530],
        ("cert+password", "none", "alice"): [331, 530],
        ("cert+password", "none", "bad"): [331, 530],
        ("cert+password", "mapped", "bob"): [530],
    }
    assert table == want


# --- TLS versions, data connections, renegotiation -------------------------------------------

@pytest.mark.parametrize("ver", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_versions_and_resumed_data(make_server, pki, pam, ver):
    p, root = pki["p"], pki["root"]
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    alice = p.leaf(root, staff("alice"))
    s = srv(make_server, pki, pam, cmap)
    f = connect(s, alice, maxver=ver)
    assert f.sendcmd("USER alice").startswith("232")
    f.prot_p()
    f.storbinary("STOR audit-ver.txt", io.BytesIO(b"v\n"))
    out = io.BytesIO()
    f.retrbinary("RETR audit-ver.txt", out.write)
    assert out.getvalue() == b"v\n"
    f.quit()


def test_data_connection_without_certificate(make_server, pki, pam):
    """RFC 4217 §15.1.2 / man: each data connection's certificate must be the control's."""
    p, root = pki["p"], pki["root"]
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    alice = p.leaf(root, staff("alice"))
    s = srv(make_server, pki, pam, cmap, require_session_reuse="no")
    f = connect(s, alice, reuse=False)
    assert f.sendcmd("USER alice").startswith("232")
    f.prot_p()
    f.storbinary("STOR audit-nocert.txt", io.BytesIO(b"x"))
    f.context = ctx_for(s)
    with pytest.raises(ftplib.error_perm, match="^522"):
        f.retrbinary("RETR audit-nocert.txt", io.BytesIO().write)
    f.quit()


def s_client(s, cert, extra, stdin, timeout=20):
    cmd = ["openssl", "s_client", "-connect", f"{s.host}:{s.port}", "-starttls", "ftp",
           "-CAfile", s.env.cert, "-cert", cert[0], "-key", cert[1], "-quiet"] + extra
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)


@pytest.mark.parametrize("ver", ["-tls1_2", "-tls1_3"])
def test_openssl_s_client(make_server, pki, pam, ver):
    p, root = pki["p"], pki["root"]
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    alice = p.leaf(root, staff("alice"))
    s = srv(make_server, pki, pam, cmap)
    r = s_client(s, alice[:2], [ver, "-ign_eof"], b"USER alice\r\nPWD\r\nQUIT\r\n")
    out = r.stdout.decode(errors="replace")
    assert "232 " in out and "257 " in out and "221 " in out, (out, r.stderr)


def test_renegotiation_refused(make_server, pki, pam):
    """A TLS 1.2 client's renegotiation is refused (SSL_OP_NO_RENEGOTIATION); the login made
    with the handshake's certificate stands."""
    p, root = pki["p"], pki["root"]
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    alice = p.leaf(root, staff("alice"))
    s = srv(make_server, pki, pam, cmap)
    cmd = ["openssl", "s_client", "-connect", f"{s.host}:{s.port}", "-starttls", "ftp",
           "-CAfile", s.env.cert, "-cert", alice[0], "-key", alice[1], "-tls1_2"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    import select
    import time
    seen = b""

    def read_until(needle, timeout=20):
        # s_client takes "R" as a command only when it is the first byte of one read from
        # stdin: each line goes in once the one before it has been answered, not after fixed
        # sleeps, which a slow handshake (ASan) outlasted so that "USER alice" and "R" came
        # in one read and "R" went to the server as a command.
        nonlocal seen
        deadline = time.time() + timeout
        while needle not in seen and time.time() < deadline:
            if not select.select([proc.stdout], [], [], max(0, deadline - time.time()))[0]:
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            seen += chunk

    read_until(b"Verify return code")     # the handshake is done; s_client reads stdin now
    proc.stdin.write(b"USER alice\r\n")
    proc.stdin.flush()
    read_until(b"232 ")
    proc.stdin.write(b"R\n")
    proc.stdin.flush()
    read_until(b"no renegotiation", 5)
    try:
        proc.stdin.write(b"PWD\r\nQUIT\r\n")
        proc.stdin.flush()
    except BrokenPipeError:
        pass
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    text = (seen + out).decode(errors="replace")
    assert "232 " in text, text
    assert "RENEGOTIATING" in text, text
    # refused with a no_renegotiation alert (s_client then gives up the connection itself)
    assert "no renegotiation" in text, text


# --- other clients --------------------------------------------------------------------------

def test_curl_cert_login_and_cert_plus_password(make_server, pki, pam):
    p, root = pki["p"], pki["root"]
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    cert, key, _ = p.leaf(root, staff("alice"))
    for mode, cred in (("cert", "alice:"), ("cert+password", f"alice:{USERS['alice'][1]}")):
        s = srv(make_server, pki, pam, cmap, cert_login=mode)
        base = ["curl", "-sS", "--ftp-ssl-reqd", "--cacert", s.env.cert, "--cert", cert, "--key",
                key, "-u", cred, "--max-time", "30"]
        r = subprocess.run(base + ["-T", "-", s.url("audit-curl.txt")], input=b"c\n",
                           capture_output=True, timeout=40)
        assert r.returncode == 0, (mode, r.stderr)
        r = subprocess.run(base + [s.url("audit-curl.txt")], capture_output=True, timeout=40)
        assert r.stdout == b"c\n", (mode, r.stderr)
        r = subprocess.run(base + [s.url("")], capture_output=True, timeout=40)
        assert b"audit-curl.txt" in r.stdout, (mode, r.stderr)


def test_lftp_client_certificate(make_server, pki, pam):
    p, root = pki["p"], pki["root"]
    cmap = write_map(pki, 'subject "CN=alice,OU=Staff,O=Audit,C=US" alice\n')
    cert, key, _ = p.leaf(root, staff("alice"))
    s = srv(make_server, pki, pam, cmap)
    script = ("set ftp:ssl-force true; set ftp:ssl-protect-data true; "
              f"set ssl:ca-file {s.env.cert}; set ssl:check-hostname no; "
              f"set ssl:cert-file {cert}; set ssl:key-file {key}; set net:max-retries 1; "
              "set net:timeout 10; set cmd:fail-exit yes; "
              f"open -u alice, -p {s.port} localhost; ls; pwd")
    r = subprocess.run(["lftp", "-d", "-c", script], capture_output=True, timeout=60)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err[-3000:]
    assert "232" in err
