"""The command line: -V, -h, -t (configuration, certificate and key checks), usage errors, and
what ftpsd does when it is not started on a socket (ftpsd(8), ftpsd.conf(5))."""
import os
import pty
import re
import shutil
import subprocess

import pytest

from ftpsd_fixture import BINARY, NOPRIV, wrapper_env

pytestmark = pytest.mark.skipif(not os.path.exists(BINARY), reason="ftpsd is not built")


def run(args, env=None, stdin=subprocess.DEVNULL, timeout=20):
    return subprocess.run([BINARY] + list(args), stdin=stdin, capture_output=True, text=True,
                          env=env, timeout=timeout)


def good_settings(env):
    return {
        "tls_cert_file": env.cert,
        "tls_key_file": env.key,
        "nopriv_user": NOPRIV[0],
        "empty_dir": env.empty,
        "write_enable": "yes",
    }


def write_conf(tmp_path, lines, name="ftpsd.conf"):
    p = tmp_path / name
    p.write_text("".join(l + "\n" for l in lines))
    return str(p)


def conf_from(tmp_path, settings, name="ftpsd.conf", header=("# test configuration",)):
    return write_conf(tmp_path, list(header) + [f"{k} = {v}" for k, v in settings.items()], name)


# --- -V, -h, usage ---------------------------------------------------------------------------


def test_version():
    r = run(["-V"])
    assert r.returncode == 0, r
    assert re.fullmatch(r"ftpsd \d+\.\d+(\.\d+)?\S*\n", r.stdout), r.stdout


def test_help_option():
    r = run(["-h"])
    assert r.returncode == 0
    assert "usage" in r.stdout.lower() and "-t" in r.stdout


@pytest.mark.parametrize("args", [["-x"], ["-f"], ["extra-argument"], ["-t", "-f", "a", "b"]])
def test_usage_errors_exit_2(args):
    r = run(args)
    assert r.returncode == 2, r
    assert "usage" in r.stderr.lower(), r.stderr


# --- -t ----------------------------------------------------------------------------------------


def test_check_good_config(env, tmp_path):
    conf = conf_from(tmp_path, good_settings(env))
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 0, r
    assert "configuration OK" in r.stdout, r
    assert r.stderr == "", r.stderr


def test_check_good_config_option_order(env, tmp_path):
    conf = conf_from(tmp_path, good_settings(env))
    r = run(["-f", conf, "-t"], env=wrapper_env(env))
    assert r.returncode == 0 and "configuration OK" in r.stdout, r



def test_config_examples_in_docs_check(env, tmp_path):
    """Every ftpsd.conf example of docs/*.md (a fenced block whose first line names
    /etc/ftpsd.conf) passes ftpsd -t once the certificate, key, unprivileged user and empty
    dir point at the test fixtures (a '#' after a value is part of the value)."""
    docs = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "docs")
    examples = []
    for name in sorted(os.listdir(docs)):
        text = open(os.path.join(docs, name)).read()
        for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S):
            if block.startswith("# /etc/ftpsd.conf"):
                examples.append((name, block))
    assert any(n == "SCALE-OUT.md" for n, _ in examples), examples
    settings = good_settings(env)
    del settings["write_enable"]
    for i, (name, block) in enumerate(examples):
        lines = [l for l in block.splitlines()
                 if not re.match(rf"\s*({'|'.join(settings)})\s*=", l)]
        conf = conf_from(tmp_path, settings, name=f"example-{i}.conf", header=lines)
        r = run(["-t", "-f", conf], env=wrapper_env(env))
        assert r.returncode == 0 and "configuration OK" in r.stdout, (name, r.stdout + r.stderr)

def test_comments_blank_lines_and_booleans(env, tmp_path):
    """Blank and comment lines are ignored; booleans take yes/no, true/false, on/off, 1/0."""
    lines = ["", "# comment", "   # indented comment", ""]
    lines += [f"{k} = {v}" for k, v in good_settings(env).items() if k != "write_enable"]
    lines += ["write_enable = TRUE", "chroot=on", "  require_prot_p   =   1  ",
              "implicit_tls = off", "require_tls_login = Yes", "require_session_reuse = false",
              "banner = hello # not a comment", "log_facility = local3", "log_level = warning",
              "umask = 027", "tls_min_version = 1.3"]
    r = run(["-t", "-f", write_conf(tmp_path, lines)], env=wrapper_env(env))
    assert r.returncode == 0, r
    assert "configuration OK" in r.stdout


def test_unknown_key_reports_file_and_line(env, tmp_path):
    conf = write_conf(tmp_path, ["# line 1", f"tls_cert_file = {env.cert}", "x = 1",
                                 f"tls_key_file = {env.key}"])
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode != 0, r
    assert f"{conf}:3: unknown key 'x'" in r.stderr, r.stderr
    assert "configuration OK" not in r.stdout


@pytest.mark.parametrize("line,what", [
    ("write_enable = maybe", "write_enable"),
    ("idle_timeout = 0", "idle_timeout"),
    ("idle_timeout = -5", "idle_timeout"),
    ("pasv_min_port = 80", "pasv_min_port"),
    ("max_login_failures = many", "max_login_failures"),
    ("umask = 999", "umask"),
    ("tls_min_version = 1.1", "tls_min_version"),
    ("log_level = loud", "log_level"),
    ("log_facility = mail", "log_facility"),
    ("tls_key_file = relative/key.pem", "tls_key_file"),
    ("no equals sign here", ""),
])
def test_bad_value_reports_file_and_line(env, tmp_path, line, what):
    settings = good_settings(env)
    key = line.split("=")[0].strip()
    settings.pop(key, None)
    lines = ["# test"] + [f"{k} = {v}" for k, v in settings.items()]
    lines.insert(2, line)          # line 3 of the file
    conf = write_conf(tmp_path, lines)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 1, r
    assert f"{conf}:3: {what}" in r.stderr, r.stderr
    assert "configuration OK" not in r.stdout


def test_duplicate_key(env, tmp_path):
    conf = conf_from(tmp_path, good_settings(env))
    with open(conf, "a") as fh:
        fh.write("write_enable = no\n")
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 1, r
    n = len(open(conf).read().splitlines())
    assert re.search(rf"{re.escape(conf)}:{n}: .*write_enable.*already set on line \d+", r.stderr), \
        r.stderr


def test_pasv_range_inverted(env, tmp_path):
    s = good_settings(env)
    s.update(pasv_min_port="50000", pasv_max_port="40000")
    conf = conf_from(tmp_path, s)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 1, r
    assert f"{conf}:" in r.stderr and "pasv_max_port" in r.stderr, r.stderr


COMMENT_WHY = "comments go on their own line ('#' starts a comment only at the start of a line)"


@pytest.mark.parametrize("key,value,why", [
    ("pasv_address", ",".join(f"10.0.{i}.0/24=10.1.1.{i}" for i in range(17)),
     "at most 16 entries"),
    ("pasv_address", "10.0.0.0/8 = 10.1.1.5",
     "no blanks around '=' (network=address, as in 10.0.0.0/8=10.1.1.5)"),
    ("pasv_address", "10.0.0.0/8= 10.1.1.5, 203.0.113.10",
     "no blanks around '=' (network=address, as in 10.0.0.0/8=10.1.1.5)"),
    ("pasv_address", "203.0.113.10   # the NAT address", COMMENT_WHY),
    ("pasv_address", "10.0.0.0/33=10.1.1.5", "'10.0.0.0/33' is not a network (in network=address)"),
    ("pasv_address", "ftp_example", "'ftp_example' is not an address, host name or network=address"),
    ("proxy_trusted", " ".join(f"10.0.0.{i}" for i in range(65)), "at most 64 entries"),
    ("proxy_trusted", "10.0.0.1, 10.0.0.2 #balancers", COMMENT_WHY),
    ("proxy_trusted", "10.0.0.1 lb.example", "'lb.example' is not an address or network"),
])
def test_list_value_errors_say_what_is_wrong(env, tmp_path, key, value, why):
    """A list too long, blanks around '=' or a comment after the list were reported as a bad
    entry that was only a piece of one ("'too many entries' is not an address",
    "'10.0.0.0/8' is not an address", "'#' is not an address")."""
    s = good_settings(env)
    s[key] = value
    conf = conf_from(tmp_path, s)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 1, r
    assert r.stderr == f"{conf}:{len(s) + 1}: {key}: {why}\n", r.stderr


def test_missing_config_file(env, tmp_path):
    conf = str(tmp_path / "does-not-exist.conf")
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 1, r
    assert conf in r.stderr


def test_key_not_matching_certificate(env, tmp_path):
    other = str(tmp_path / "other.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", other], check=True, capture_output=True)
    os.chmod(other, 0o600)
    s = good_settings(env)
    s["tls_key_file"] = other
    conf = conf_from(tmp_path, s)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode != 0, r
    assert other in r.stderr, r.stderr
    assert re.search(rf"{re.escape(conf)}:\d+: ", r.stderr), r.stderr
    assert "configuration OK" not in r.stdout


def test_missing_certificate(env, tmp_path):
    s = good_settings(env)
    s["tls_cert_file"] = str(tmp_path / "no-such-cert.pem")
    conf = conf_from(tmp_path, s)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode != 0, r
    assert s["tls_cert_file"] in r.stderr, r.stderr


def test_missing_key(env, tmp_path):
    s = good_settings(env)
    s["tls_key_file"] = str(tmp_path / "no-such-key.pem")
    conf = conf_from(tmp_path, s)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode != 0, r
    assert s["tls_key_file"] in r.stderr, r.stderr


# What each file key's message starts with; tls_ca_path is a directory.
FILE_KEYS = {
    "tls_cert_file": "tls_cert_file: cannot load certificate",
    "tls_key_file": "tls_key_file: cannot load key",
    "tls_ca_file": "tls_ca_file: cannot load client CA from",
    "tls_ca_path": "tls_ca_path: cannot load client CAs from",
    "tls_crl_file": "tls_crl_file: cannot load CRL",
    "tls_ocsp_file": "tls_ocsp_file: cannot read OCSP response",
}


def file_key_settings(env, key, value):
    """good_settings with key = value, and what makes ftpsd read it (client certificates for the
    CA and CRL keys, with the server certificate as the CA)."""
    s = good_settings(env)
    if key in ("tls_ca_file", "tls_ca_path", "tls_crl_file"):
        s["tls_client_cert"] = "optional"
        if key != "tls_ca_file":
            s["tls_ca_file"] = env.cert
    s[key] = value
    return s


@pytest.mark.parametrize("key", sorted(FILE_KEYS))
def test_missing_file_names_the_system_error(env, tmp_path, key):
    """OpenSSL's own text for a file it cannot open is "system lib", which hides the cause: -t
    says what the system said."""
    missing = str(tmp_path / "missing.pem")
    s = file_key_settings(env, key, missing)
    conf = conf_from(tmp_path, s)
    line = list(s).index(key) + 2
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 1, r
    assert f"{conf}:{line}: {FILE_KEYS[key]} {missing}: No such file or directory\n" in r.stderr, \
        r.stderr
    assert "system lib" not in r.stderr, r.stderr


@pytest.mark.parametrize("key", ["tls_cert_file", "tls_key_file", "tls_crl_file"])
def test_corrupt_pem_keeps_openssl_text(env, tmp_path, key):
    """A file that opens but does not parse keeps OpenSSL's reason."""
    bad = str(tmp_path / "garbage.pem")
    with open(bad, "w") as fh:
        fh.write("-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n")
    os.chmod(bad, 0o600)
    r = run(["-t", "-f", conf_from(tmp_path, file_key_settings(env, key, bad))],
            env=wrapper_env(env))
    assert r.returncode == 1, r
    assert re.search(rf"{FILE_KEYS[key]} {re.escape(bad)}: error:[0-9A-F]+:", r.stderr), r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
@pytest.mark.parametrize("key", ["tls_cert_file", "tls_key_file"])
def test_unreadable_file_says_permission_denied(env, key):
    """Run by a user who may not read the file (rootless mode), -t says so."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    d = env.path(f"unreadable-{key}")
    files = dict(zip(("tls_cert_file", "tls_key_file"), env.cert_copy(d, 60001)))
    os.chown(files[key], 0, 0)
    os.chmod(files[key], 0o600)
    conf = os.path.join(d, "ftpsd.conf")
    with open(conf, "w") as fh:
        fh.write("".join(f"{k} = {v}\n" for k, v in files.items()))
    os.chmod(conf, 0o644)
    os.chmod(d, 0o755)
    r = subprocess.run(["setpriv", "--reuid=60001", "--regid=60001", "--clear-groups", "--",
                        BINARY, "-t", "-f", conf], capture_output=True, text=True,
                       env=wrapper_env(env), timeout=20)
    assert r.returncode == 1, r
    assert f"{FILE_KEYS[key]} {files[key]}: Permission denied" in r.stderr, r.stderr


def test_world_readable_key_warns(env, tmp_path):
    key = str(tmp_path / "readable.key")
    shutil.copy(env.key, key)
    os.chmod(key, 0o644)
    s = good_settings(env)
    s["tls_key_file"] = key
    conf = conf_from(tmp_path, s)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert "warning" in r.stderr.lower() and key in r.stderr, r.stderr
    # A warning, not an error.
    assert r.returncode == 0 and "configuration OK" in r.stdout, r


@pytest.mark.parametrize("group,mode,readers", [
    ("root", 0o640, None),            # root's own group
    ("ssl-cert", 0o640, None),        # Debian's arrangement (the snakeoil key)
    ("ssl-cert", 0o600, None),
    ("shared", 0o640, "group shared"),
    (None, 0o640, "group 60999"),     # a gid without a name
    ("shared", 0o600, None),
    ("root", 0o604, "everyone"),
    ("ssl-cert", 0o644, "everyone"),
])
def test_key_mode_warning_spares_root_and_ssl_cert(env, tmp_path, group, mode, readers):
    """README.Debian's key, the snakeoil one, is root:ssl-cert 0640, as Debian keeps keys for the
    daemons in ssl-cert: that is no warning. Everyone, or another group, reading it is."""
    groups = tmp_path / "group"
    groups.write_text(open(env.group).read() + "ssl-cert:x:60777:\n")
    gid = {"root": 0, "ssl-cert": 60777, "shared": 60500, None: 60999}[group]
    key = str(tmp_path / "server.key")
    shutil.copy(env.key, key)
    os.chown(key, 0, gid)
    os.chmod(key, mode)
    s = good_settings(env)
    s["tls_key_file"] = key
    conf = conf_from(tmp_path, s)
    r = run(["-t", "-f", conf], env=wrapper_env(env, NSS_WRAPPER_GROUP=str(groups)))
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    expected = [] if readers is None else [
        f"{conf}:3: warning: key {key} is readable by {readers} (mode {mode:04o}): only its "
        "owner, root's group or ssl-cert should read it"]
    assert warnings_of(r) == expected, r.stderr


@pytest.mark.parametrize("mode,writers", [(0o620, "its group"), (0o602, "everyone"),
                                          (0o622, "everyone")])
def test_key_writable_by_others_is_a_warning(env, tmp_path, mode, writers):
    """Whoever may write the key may put a key of their own there: a warning whatever the
    group (ssl-cert too), which the readers' rule above no longer covered."""
    key = str(tmp_path / "server.key")
    shutil.copy(env.key, key)
    os.chown(key, 0, 0)
    os.chmod(key, mode)
    s = good_settings(env)
    s["tls_key_file"] = key
    conf = conf_from(tmp_path, s)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    assert warnings_of(r) == [
        f"{conf}:3: warning: key {key} is writable by {writers} (mode {mode:04o}): only its "
        "owner should write it"], r.stderr


def test_private_key_gives_no_warning(env, tmp_path):
    conf = conf_from(tmp_path, good_settings(env))
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert "warning" not in r.stderr.lower(), r.stderr


def warnings_of(r):
    return [l for l in r.stderr.splitlines() if "warning:" in l]


def test_check_warns_of_a_pam_service_without_a_file(env, tmp_path):
    """Without a file for pam_service Linux-PAM quietly uses "other" and the shipped
    pam.d/ftpsd's checks stop applying: -t warns (the file may come later, with a package),
    for the main part and a [host] section. Under pam_wrapper (PAM_WRAPPER=1, as the
    tests run sessions) its service directory is where the file must be; PAM looks for the
    name in lower case."""
    s = good_settings(env)
    s["pam_service"] = "no-such-service"
    conf = write_conf(tmp_path, ["# test"] + [f"{k} = {v}" for k, v in s.items()]
                      + ["[host a.example]", "pam_service = Missing2",
                         "[host b.example]", "pam_service = FTPSD"])
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    where = f"PAM_WRAPPER_SERVICE_DIR {env.pamdir}"
    assert warnings_of(r) == [
        f"{conf}:7: warning: pam_service 'no-such-service': no such service in {where}; "
        'Linux-PAM would use the "other" service for every login',
        f"{conf}:9: warning: [host a.example]: pam_service 'Missing2': no such service in "
        f'{where}; Linux-PAM would use the "other" service for every login'], r.stderr
    # The same names in the system's directories, without pam_wrapper.
    plain = wrapper_env(env)
    del plain["PAM_WRAPPER"], plain["PAM_WRAPPER_SERVICE_DIR"]
    r = run(["-t", "-f", conf], env=plain)
    assert r.returncode == 0, r
    assert f"{conf}:7: warning: pam_service 'no-such-service': no such service in " \
        "/etc/pam.d or /usr/lib/pam.d;" in r.stderr, r.stderr
    if os.path.exists("/etc/pam.d/other"):
        s["pam_service"] = "other"
        r = run(["-t", "-f", conf_from(tmp_path, s, "system.conf")], env=plain)
        assert r.returncode == 0 and warnings_of(r) == [], r.stderr


def test_check_warns_of_missing_directories(env, tmp_path):
    """A root_dir (main part, [host], [user] and [group] sections) or anon_root that does not
    exist or is not a directory fails every login it applies to, and an xferlog_file whose
    directory does not exist logs no transfer: -t warns, and creates nothing. A root_dir
    with a %-escape names a directory per user, which -t does not guess."""
    missing = str(tmp_path / "missing")
    a_file = str(tmp_path / "a-file")
    open(a_file, "w").close()
    s = good_settings(env)
    s.update(root_dir=missing, anonymous="yes", anon_root=a_file,
             xferlog_file=f"{missing}/xferlog")
    conf = write_conf(tmp_path, ["# test"] + [f"{k} = {v}" for k, v in s.items()]
                      + ["[host a.example]", f"root_dir = {a_file}",
                         "[user alice]", f"root_dir = {missing}/alice",
                         "[group shared]", f"root_dir = {missing}/%u",
                         "[user bob]", f"root_dir = {tmp_path}"])
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    assert warnings_of(r) == [
        f"{conf}:7: warning: root_dir {missing}: No such file or directory: every login it "
        "applies to would fail",
        f"{conf}:12: warning: [host a.example]: root_dir {a_file}: not a directory: every "
        "login it applies to would fail",
        f"{conf}:14: warning: [user alice]: root_dir {missing}/alice: No such file or "
        "directory: every login it applies to would fail",
        f"{conf}:9: warning: anon_root {a_file}: not a directory: every anonymous login would "
        "fail",
        f"{conf}:10: warning: xferlog_file {missing}/xferlog: directory {missing}: No such "
        "file or directory: no transfer would be logged"], r.stderr
    assert not os.path.exists(missing)
    # Existing directories, and anon_root without anonymous FTP: nothing to say.
    s.update(root_dir=str(tmp_path), anonymous="no", anon_root=missing,
             xferlog_file=str(tmp_path / "xferlog"))
    r = run(["-t", "-f", conf_from(tmp_path, s, "good.conf")], env=wrapper_env(env))
    assert r.returncode == 0 and warnings_of(r) == [], r.stderr
    assert not os.path.exists(tmp_path / "xferlog")


def test_nopriv_user_checks(env, tmp_path):
    s = good_settings(env)
    s["nopriv_user"] = "no-such-user-ftpsd"
    r = run(["-t", "-f", conf_from(tmp_path, s)], env=wrapper_env(env))
    assert r.returncode == 1 and "does not exist" in r.stderr, r
    s["nopriv_user"] = "root"
    r = run(["-t", "-f", conf_from(tmp_path, s, name="root.conf")], env=wrapper_env(env))
    assert r.returncode == 1 and "root" in r.stderr, r


def test_empty_dir_checks(env, tmp_path):
    bad = tmp_path / "writable-empty"
    bad.mkdir()
    os.chmod(bad, 0o777)
    s = good_settings(env)
    s["empty_dir"] = str(bad)
    r = run(["-t", "-f", conf_from(tmp_path, s)], env=wrapper_env(env))
    assert r.returncode == 1 and str(bad) in r.stderr, r
    s["empty_dir"] = str(tmp_path / "missing-dir")
    r = run(["-t", "-f", conf_from(tmp_path, s, name="missing.conf")], env=wrapper_env(env))
    assert r.returncode == 1 and "missing-dir" in r.stderr, r


def test_config_error_at_connection_time_gives_421(make_server):
    """ftpsd.conf(5): a bad configuration is reported to the client as 421."""
    s = make_server(no_such_key="1")
    r = s.raw()
    code, lines = r.reply()
    assert code == 421, lines
    r.close()


def test_banner_keeps_hash(make_server):
    """A '#' later in a line is part of the value."""
    s = make_server(banner="Welcome # to the test")
    r = s.raw()
    assert r.reply() == (220, ["220 Welcome # to the test"])
    r.close()


# --- not on a socket ---------------------------------------------------------------------------


def test_stdin_not_a_socket(env, tmp_path):
    conf = conf_from(tmp_path, good_settings(env))
    with open(os.devnull, "rb") as devnull:
        r = run(["-f", conf], env=wrapper_env(env), stdin=devnull)
    assert r.returncode == 2, r
    assert "not a socket" in r.stderr, r.stderr
    assert r.stdout == ""


def test_stdin_a_regular_file(env, tmp_path):
    conf = conf_from(tmp_path, good_settings(env))
    with open(conf, "rb") as fh:
        r = run(["-f", conf], env=wrapper_env(env), stdin=fh)
    assert r.returncode == 2, r
    assert "not a socket" in r.stderr, r.stderr


def test_stdin_a_terminal(env, tmp_path):
    conf = conf_from(tmp_path, good_settings(env))
    master, slave = pty.openpty()
    try:
        r = run(["-f", conf], env=wrapper_env(env), stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode == 2, r
    assert "terminal" in r.stderr, r.stderr


def test_check_reports_kernel_tls(env, tmp_path):
    """-t says whether PROT P downloads will use kernel TLS: what this kernel offers (asked the
    same way as ftpsd asks, independently), or off with tls_ktls = no."""
    from test_sandbox import kernel_offers_ktls
    conf = conf_from(tmp_path, good_settings(env))
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 0, r
    if kernel_offers_ktls():
        assert "kernel TLS: offered by this kernel; PROT P downloads use it" in r.stdout, r
    else:
        assert 'kernel TLS: not offered by this kernel (no "tls" ULP)' in r.stdout, r
    r = run(["-t", "-f", conf, "-o", "tls_ktls=no"], env=wrapper_env(env))
    assert r.returncode == 0 and "kernel TLS: off (tls_ktls = no)" in r.stdout, r


# --- -o over the file --------------------------------------------------------------------------


def test_override_longer_than_its_buffer_is_refused(env, tmp_path):
    """An -o assignment over 4095 bytes was cut short and checked as that (a path losing its
    tail could pass as another); now it is refused, naming -o."""
    conf = conf_from(tmp_path, good_settings(env))
    r = run(["-t", "-f", conf, "-o", "pam_service=" + "a" * 4100 + "/x"], env=wrapper_env(env))
    assert r.returncode != 0, r
    assert "-o pam_service=aaaa" in r.stderr and "longer than 4095 bytes" in r.stderr, r


def test_override_settles_cross_key_error_in_file(env, tmp_path):
    """ftpsd(8): -o values are set over the file before the checks across keys, so an -o can
    supply what a key in the file needs (proxy_protocol needs proxy_trusted)."""
    s = good_settings(env)
    s["proxy_protocol"] = "v1"
    conf = conf_from(tmp_path, s)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 1 and "needs proxy_trusted" in r.stderr, r
    r = run(["-t", "-f", conf, "-o", "proxy_trusted=10.0.0.1"], env=wrapper_env(env))
    assert r.returncode == 0 and "configuration OK" in r.stdout, r


def test_override_can_make_cross_key_error(env, tmp_path):
    """The checks across keys see the -o values too."""
    conf = conf_from(tmp_path, good_settings(env))
    r = run(["-t", "-f", conf, "-o", "proxy_protocol=v2"], env=wrapper_env(env))
    assert r.returncode == 1 and "needs proxy_trusted" in r.stderr, r


# --- [host] sections ---------------------------------------------------------------------------


@pytest.mark.parametrize("root,ok", [("/srv/%x", False), ("/srv/ftp%", False),
                                     ("/srv/../etc", False), ("/srv/%u", True),
                                     ("/srv/100%%/%u", True)])
def test_host_root_dir_escapes_checked_as_main(env, tmp_path, root, ok):
    """A [host] section's root_dir is expanded like the main one, so it gets the same checks:
    only %u and %% after a %, no '..'."""
    for where in ("main", "host"):
        lines = ["# test"] + [f"{k} = {v}" for k, v in good_settings(env).items()]
        if where == "main":
            lines.append(f"root_dir = {root}")
        else:
            lines += ["[host a.example]", f"root_dir = {root}"]
        r = run(["-t", "-f", write_conf(tmp_path, lines, f"{where}.conf")], env=wrapper_env(env))
        assert (r.returncode == 0) == ok, (where, r)
        if not ok:
            assert "root_dir" in r.stderr and "configuration OK" not in r.stdout, (where, r)


# --- rootless mode -----------------------------------------------------------------------------


def rootless_check(env, uid):
    """ftpsd -t run as uid, on a configuration with only its own copy of the certificate and
    key: nopriv_user and empty_dir are left at their defaults, which do not exist here."""
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    d = env.path(f"rootless-check-{uid}")
    env.cert_copy(d, uid)
    conf = os.path.join(d, "ftpsd.conf")
    with open(conf, "w") as fh:
        fh.write(f"tls_cert_file = {d}/server.pem\ntls_key_file = {d}/server.key\n")
    os.chmod(conf, 0o644)
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
                           BINARY, "-t", "-f", conf], capture_output=True, text=True,
                          env=wrapper_env(env), timeout=20)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_check_rootless_skips_nopriv_user_and_empty_dir(env):
    """ftpsd(8): rootless mode uses neither nopriv_user nor empty_dir, so -t run by that user
    does not check them (the session does not either)."""
    r = rootless_check(env, 60001)
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    assert "nopriv_user" not in r.stderr and "empty_dir" not in r.stderr, r.stderr
    assert "rootless mode" in r.stdout, r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_check_rootless_needs_a_passwd_entry(env):
    """A session looks its user up by uid; -t reports a uid with no passwd entry."""
    r = rootless_check(env, 60999)
    assert r.returncode == 1 and "uid 60999 has no passwd entry" in r.stderr, r


# --- where -t points ---------------------------------------------------------------------------


@pytest.mark.parametrize("line,key", [
    ("tls_ciphers = BOGUS", "tls_ciphers"),
    ("tls_ciphersuites = BOGUS", "tls_ciphersuites"),
    ("tls_groups = nope", "tls_groups"),
    ("tls_ca_file = {tmp}/missing-ca.pem", "tls_ca_file"),
    ("tls_ca_path = {tmp}/no-such-dir", "tls_ca_path"),
    ("tls_crl_file = {tmp}/missing.crl", "tls_crl_file"),
    ("tls_ocsp_file = {tmp}/missing.der", "tls_ocsp_file"),
    ("tls_ocsp_file = {garbage}", "tls_ocsp_file"),
])
def test_tls_error_names_the_line_of_its_key(env, tmp_path, line, key):
    """A TLS setting that OpenSSL refuses is reported on its own line, not the certificate's."""
    garbage = tmp_path / "garbage.der"
    garbage.write_bytes(b"not DER at all")
    lines = ["# test"] + [f"{k} = {v}" for k, v in good_settings(env).items()]
    lines.insert(4, line.format(tmp=tmp_path, garbage=garbage))  # line 5; the certificate is on 2
    if key in ("tls_ca_path", "tls_crl_file"):
        # read only where client certificates are asked for; a CA file makes that valid
        lines += [f"tls_ca_file = {env.cert}", "tls_client_cert = optional"]
    elif key == "tls_ca_file":
        lines.append("tls_client_cert = optional")
    conf = write_conf(tmp_path, lines)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 1, r
    assert f"{conf}:5: {key}: " in r.stderr, r.stderr
    assert f"{conf}:2:" not in r.stderr, r.stderr


def test_defaults_have_no_line_zero(env, tmp_path):
    """A key left at its default or set with -o has no line: -t names the key instead of
    'file:0:'. (The certificate is set with -o: whether the default one, the snakeoil
    certificate, exists depends on the machine.)"""
    s = good_settings(env)
    del s["tls_cert_file"], s["nopriv_user"]
    s["tls_key_file"] = env.key
    conf = conf_from(tmp_path, s)
    r = run(["-t", "-f", conf, "-o", "empty_dir=/nonexistent", "-o",
             f"tls_cert_file={tmp_path}/missing.pem"], env=wrapper_env(env))
    assert r.returncode == 1, r
    assert f"{conf}:0:" not in r.stderr, r.stderr
    assert f"{conf}: tls_cert_file: cannot load certificate" in r.stderr, r.stderr
    assert f"{conf}: nopriv_user 'ftpsd'" in r.stderr, r.stderr
    assert f"{conf}: empty_dir /nonexistent" in r.stderr, r.stderr
    r = run(["-t", "-f", conf, "-o", "proxy_protocol=v2"], env=wrapper_env(env))
    assert f"{conf}: proxy_protocol: needs proxy_trusted" in r.stderr, r.stderr


def test_host_key_error_names_its_line(env, tmp_path):
    """A [host] section's own key file is reported on the line that sets it."""
    lines = ["# test"] + [f"{k} = {v}" for k, v in good_settings(env).items()]
    lines += ["[host a.example]", "", f"tls_cert_file = {env.cert}",
              f"tls_key_file = {tmp_path}/missing.key"]
    conf = write_conf(tmp_path, lines)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 1, r
    assert f"{conf}:{len(lines)}: [host a.example]: tls_key_file: cannot load key" in r.stderr, \
        r.stderr


# --- configurations that cannot work -----------------------------------------------------------


@pytest.mark.parametrize("extra,key", [
    # TLS 1.3 only, and no TLS 1.3 suite: "no ciphers available" at every handshake
    ({"tls_min_version": "1.3", "tls_ciphersuites": ""}, "tls_ciphersuites"),
    # the test certificate has an EC key: RSA-only TLS 1.2 ciphers, and no TLS 1.3 suite
    ({"tls_ciphers": "ECDHE-RSA-AES128-GCM-SHA256", "tls_ciphersuites": ""}, "tls_ciphers"),
    # ciphers no handshake may use (no authentication, PSK without keys)
    ({"tls_ciphers": "aNULL", "tls_ciphersuites": ""}, "tls_ciphers"),
    ({"tls_ciphers": "PSK", "tls_ciphersuites": ""}, "tls_ciphers"),
    # no PAM service, or a name PAM would cut at the '/'
    ({"pam_service": ""}, "pam_service"),
    ({"pam_service": "etc/ftpsd"}, "pam_service"),
])
def test_check_refuses_configuration_that_cannot_work(env, tmp_path, extra, key):
    s = good_settings(env)
    s.update(extra)
    conf = conf_from(tmp_path, s)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 1 and "configuration OK" not in r.stdout, r
    line = 2 + list(s).index(key)   # the header comment is line 1
    assert f"{conf}:{line}: {key}: " in r.stderr, r.stderr


@pytest.mark.parametrize("extra", [
    # TLS 1.2 allowed with only TLS 1.3 suites usable: a TLS 1.3 client can still connect
    {"tls_ciphers": "ECDHE-RSA-AES128-GCM-SHA256"},
    {"tls_min_version": "1.3", "tls_ciphers": "ECDHE-RSA-AES128-GCM-SHA256"},
    # TLS 1.2 only, with a cipher for the EC key
    {"tls_ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256", "tls_ciphersuites": ""},
])
def test_check_accepts_configuration_that_can_work(env, tmp_path, extra):
    s = good_settings(env)
    s.update(extra)
    r = run(["-t", "-f", conf_from(tmp_path, s)], env=wrapper_env(env))
    assert r.returncode == 0 and "configuration OK" in r.stdout, r


def test_check_refuses_empty_pam_service_in_host(env, tmp_path):
    lines = ["# test"] + [f"{k} = {v}" for k, v in good_settings(env).items()]
    lines += ["[host a.example]", "pam_service ="]
    conf = write_conf(tmp_path, lines)
    r = run(["-t", "-f", conf], env=wrapper_env(env))
    assert r.returncode == 1, r
    assert f"{conf}:{len(lines)}: [host a.example]: pam_service" in r.stderr, r.stderr


@pytest.mark.parametrize("conf", [{"tls_min_version": "1.3", "tls_ciphersuites": ""},
                                  {"pam_service": ""}])
def test_session_start_refuses_configuration_that_cannot_work(make_server, conf):
    """The session's own check refuses them too, with 421 before any handshake."""
    s = make_server(**conf)
    r = s.raw()
    code, lines = r.reply()
    assert code == 421, lines
    r.close()


def dumped(out):
    """-T's lines but its first (which names the file)."""
    lines = out.splitlines()
    assert lines[0].startswith("# ftpsd -T: every key's value from "), lines[0]
    return lines[1:]


def test_dump_prints_every_setting_and_reads_back_the_same(tmp_path, env):
    """-T prints each key once with its value in effect (the file's, -o's over it, the
    defaults), then the sections with what they set, in the file's order; what it prints is a
    configuration that -t accepts and that -T prints again line for line."""
    settings = good_settings(env) | {"idle_timeout": "120", "anon_umask": "027",
                                     "log_level": "debug", "seccomp": "trap",
                                     "proxy_protocol": "v2", "proxy_trusted": "10.0.0.0/8",
                                     "anon_write_enable": "upload", "tls_min_version": "1.3"}
    path = conf_from(tmp_path, settings)
    with open(path, "a") as fh:
        fh.write("[host ftp.example.org]\nbanner = hello # not a comment\n"
                 "[group staff]\numask = 2\n[user alice]\nwrite_enable = no\nmax_rate = 1000\n")
    r = run(["-T", "-f", path, "-o", "max_rate=5000"], env=wrapper_env(env))
    assert r.returncode == 0, r.stderr
    lines = dumped(r.stdout)
    main = lines[:lines.index("")]
    names = [l.split(" =")[0] for l in main]
    assert len(names) == len(set(names)) and len(names) > 60, names
    for want in ("idle_timeout = 120", "anon_umask = 027", "log_level = debug",
                 "seccomp = trap", "proxy_protocol = v2", "anon_write_enable = upload",
                 "tls_min_version = 1.3", "max_rate = 5000", "write_enable = yes",
                 "data_timeout = 60", "max_sessions_per_user = 32", "root_dir =",
                 "log_facility = ftp"):
        assert want in main, want
    assert lines[lines.index("") + 1:] == [
        "[host ftp.example.org]", "banner = hello # not a comment", "",
        "[group staff]", "umask = 002", "",
        "[user alice]", "write_enable = no", "max_rate = 1000"], lines
    again = tmp_path / "dumped.conf"
    again.write_text(r.stdout)
    r2 = run(["-T", "-f", str(again)], env=wrapper_env(env))
    assert r2.returncode == 0 and dumped(r2.stdout) == lines, r2.stderr
    t = run(["-t", "-f", str(again)], env=wrapper_env(env))
    assert t.returncode == 0, t.stderr


def test_dump_leaves_an_unset_session_lock_dir_unset(tmp_path, env):
    """Whether session_lock_dir is set at all is a setting (a rootless server counts sessions
    only then): -T shows its default as a comment, so that its output read back does not set
    it (rootless, to root's /run/ftpsd: every login would fail); one set in the file or by -o
    is printed as set."""
    path = conf_from(tmp_path, good_settings(env))
    r = run(["-T", "-f", path], env=wrapper_env(env))
    assert r.returncode == 0, r.stderr
    lines = dumped(r.stdout)
    assert "#session_lock_dir = /run/ftpsd" in lines, lines
    assert not [l for l in lines if l.startswith("session_lock_dir")], lines
    r = run(["-T", "-f", path, "-o", f"session_lock_dir={tmp_path}"], env=wrapper_env(env))
    assert r.returncode == 0 and f"session_lock_dir = {tmp_path}" in dumped(r.stdout), r


def test_dump_of_a_bad_file_prints_only_the_error(tmp_path, env):
    path = conf_from(tmp_path, good_settings(env) | {"idle_timeout": "forever"})
    r = run(["-T", "-f", path], env=wrapper_env(env))
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert "idle_timeout" in r.stderr, r.stderr
    r = run(["-T", "-t", "-f", path])
    assert r.returncode == 2 and "usage:" in r.stderr
