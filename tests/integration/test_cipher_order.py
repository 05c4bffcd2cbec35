"""The TLS cipher order follows the CPU (issue "Benchmarks and the fast data path": AES-GCM
preferred where the CPU has AES instructions), ftpsd.conf(5) tls_ciphersuites/tls_ciphers.

- On a CPU with AES instructions (this machine) the server's order puts AES-GCM first, and a
  client that lists ChaCha20-Poly1305 first (a client without AES hardware) still gets it.
- On a CPU without them (the test-hooks build pretends so with FTPSD_TEST_NO_AES) the default
  lists put ChaCha20-Poly1305 first; a list the admin wrote is used as written.
- ftpsd -t says which order is in use.

openssl s_client negotiates on the control connection (AUTH TLS through -starttls ftp); the data
connections use the same context, hence the same order.
"""
import os
import re
import subprocess

import pytest

from ftpsd_fixture import BINARY, HOOKS_BINARY, NOPRIV, wrapper_env

AES128 = "TLS_AES_128_GCM_SHA256"
AES256 = "TLS_AES_256_GCM_SHA384"
CHACHA = "TLS_CHACHA20_POLY1305_SHA256"
AES128_12 = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
CHACHA_12 = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"


def cpu_has_aes():
    with open("/proc/cpuinfo") as fh:
        flags = re.search(r"^flags\s*:(.*)$", fh.read(), re.M)
    return bool(flags) and {"aes", "pclmulqdq"} <= set(flags.group(1).split())


needs_aes = pytest.mark.skipif(not cpu_has_aes(), reason="this CPU has no AES instructions")


def negotiated(server, suites=None, ciphers=None, tls12=False):
    """The cipher an openssl s_client offering `suites` (TLS 1.3) or `ciphers` (1.2), in that
    order of preference, gets on the control connection."""
    cmd = ["openssl", "s_client", "-starttls", "ftp", "-connect", f"127.0.0.1:{server.port}",
           "-servername", "localhost", "-CAfile", server.env.cert, "-brief"]
    cmd += ["-tls1_2", "-cipher", ciphers] if tls12 else ["-tls1_3", "-ciphersuites", suites]
    r = subprocess.run(cmd, input="QUIT\r\n", capture_output=True, text=True, timeout=20)
    m = re.search(r"^Ciphersuite: (\S+)$", r.stderr, re.M)
    assert m, r.stderr
    return m.group(1)


@pytest.fixture
def no_aes_server(make_server, monkeypatch):
    """The test-hooks build, told that the CPU has no AES instructions."""
    if not os.path.exists(HOOKS_BINARY):
        pytest.skip("build/ftpsd-testhooks is built by make check")
    monkeypatch.setenv("FTPSD_TEST_NO_AES", "1")
    monkeypatch.setenv("FTPSD_TEST_ENV",
                       (os.environ.get("FTPSD_TEST_ENV", "") + " FTPSD_TEST_NO_AES").strip())

    def make(**conf):
        return make_server(binary=HOOKS_BINARY, **conf)
    return make


@needs_aes
def test_aes_cpu_server_order_puts_aes_gcm_first(server):
    assert negotiated(server, f"{CHACHA}:{AES256}:{AES128}") == CHACHA  # client has no AES
    assert negotiated(server, f"{AES256}:{CHACHA}:{AES128}") == AES128  # the server's order
    assert negotiated(server, f"{AES256}:{CHACHA}") == AES256
    assert negotiated(server, ciphers=f"{CHACHA_12}:{AES128_12}", tls12=True).startswith(
        "ECDHE-ECDSA-CHACHA20")
    assert negotiated(server, ciphers=f"ECDHE-ECDSA-AES256-GCM-SHA384:{AES128_12}",
                      tls12=True) == "ECDHE-ECDSA-AES128-GCM-SHA256"


def test_no_aes_cpu_puts_chacha_first(no_aes_server):
    s = no_aes_server()
    assert negotiated(s, f"{AES128}:{AES256}:{CHACHA}") == CHACHA
    assert negotiated(s, f"{AES256}:{AES128}") == AES128  # without ChaCha: still the default's
    assert negotiated(s, ciphers=f"{AES128_12}:{CHACHA_12}", tls12=True).startswith(
        "ECDHE-ECDSA-CHACHA20")


def test_no_aes_cpu_keeps_the_admins_list(no_aes_server):
    s = no_aes_server(tls_ciphersuites=f"{AES256}:{CHACHA}",
                      tls_ciphers=f"ECDHE-ECDSA-AES256-GCM-SHA384:{CHACHA_12}")
    assert negotiated(s, f"{AES256}:{CHACHA}") == AES256
    assert negotiated(s, ciphers=f"ECDHE-ECDSA-AES256-GCM-SHA384:{CHACHA_12}",
                      tls12=True) == "ECDHE-ECDSA-AES256-GCM-SHA384"


def test_client_order_when_server_preference_is_off(make_server):
    s = make_server(tls_prefer_server_ciphers="no")
    assert negotiated(s, f"{AES256}:{AES128}:{CHACHA}") == AES256


def check_output(env, tmp_path, binary, extra_env=None, **settings):
    conf = tmp_path / "ftpsd.conf"
    base = {"tls_cert_file": env.cert, "tls_key_file": env.key, "nopriv_user": NOPRIV[0],
            "empty_dir": env.empty}
    base.update(settings)
    conf.write_text("".join(f"{k} = {v}\n" for k, v in base.items()))
    r = subprocess.run([binary, "-t", "-f", str(conf)], capture_output=True, text=True,
                       env=wrapper_env(env, **(extra_env or {})), timeout=20)
    assert r.returncode == 0, r
    return re.search(r"^TLS cipher order: (.*)$", r.stdout, re.M).group(1)


def test_check_reports_the_order(env, tmp_path):
    if cpu_has_aes():
        assert check_output(env, tmp_path, BINARY).startswith("AES-GCM first")
    assert check_output(env, tmp_path, BINARY, tls_ciphersuites=AES256).startswith(
        "as configured")
    if os.path.exists(HOOKS_BINARY):
        assert check_output(env, tmp_path, HOOKS_BINARY, {"FTPSD_TEST_NO_AES": "1"}).startswith(
            "ChaCha20-Poly1305 first")
