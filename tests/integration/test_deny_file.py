"""deny_file and hide_file (ftpsd.conf(5)): a denied name is refused by every command that takes
a path (550, the same reply whether or not it exists), also as a directory on the way to
something else, and is never listed; a hidden name is left out of listings and reachable by
name. Both are checked by the user process."""
import ftplib
import io
import os
import secrets
import pytest

from ftpsd_fixture import HOOKS_BINARY, USERS, Server, check_config

DENY = ".ssh, *.key, .htaccess"
HIDE = "*.bak, .cache"
TREE = {
    ".ssh/authorized_keys": b"ssh-ed25519 AAAA user@host\n",
    "server.key": b"-----BEGIN PRIVATE KEY-----\n",
    ".htaccess": b"Require all denied\n",
    "visible.txt": b"hello\n",
    "old.bak": b"backup\n",
    ".cache/c.txt": b"cached\n",
    "sub/inner.txt": b"inner\n",
    "UPPER.KEY": b"upper\n",
}
REFUSED = "Permission denied: name is not allowed."


def make_roots(env, users=("alice",)):
    """A root_dir for the server ("<base>/%u") and, for each user, that root holding TREE, owned
    by the user. Returns (root_dir, {user: root})."""
    base = env.path("deny-" + secrets.token_hex(3))
    roots = {}
    for user in users:
        uid = USERS[user][0]
        root = os.path.join(base, user)
        for rel, data in TREE.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(data)
        for d, dirs, files in os.walk(root):
            for n in [d] + [os.path.join(d, x) for x in dirs + files]:
                os.lchown(n, uid, uid)
        roots[user] = root
    return os.path.join(base, "%u"), roots


def snapshot(root):
    """Every path under root with its content (None for a directory)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for x in dirs:
            out[os.path.relpath(os.path.join(d, x), root)] = None
        for x in files:
            with open(os.path.join(d, x), "rb") as fh:
                out[os.path.relpath(os.path.join(d, x), root)] = fh.read()
    return out


@pytest.fixture(scope="module")
def denying(env):
    root_dir, roots = make_roots(env)
    s = Server(env, name="deny", root_dir=root_dir, deny_file=DENY, write_enable="yes")
    yield s, roots["alice"]
    s.stop()


def transfer_reply(f, cmd):
    """The error reply to a data command that must be refused before its 150."""
    with pytest.raises(ftplib.error_perm) as e:
        conn = f.transfercmd(cmd)
        conn.close()
        f.voidresp()
    return str(e.value)


def command_reply(f, cmd):
    with pytest.raises(ftplib.error_perm) as e:
        f.sendcmd(cmd)
    return str(e.value)


# (command, the name the reply repeats): every command class that takes a path.
CONTROL_CASES = [
    ("CWD .ssh", ".ssh"),
    ("CWD /.ssh", "/.ssh"),
    ("CWD sub/../.ssh", "sub/../.ssh"),
    ("CWD .ssh/nothing-here", ".ssh/nothing-here"),
    ("SIZE server.key", "server.key"),
    ("SIZE missing.key", "missing.key"),
    ("MDTM .ssh/authorized_keys", ".ssh/authorized_keys"),
    ("MLST .ssh", ".ssh"),
    ("MLST .ssh/authorized_keys", ".ssh/authorized_keys"),
    ("STAT .ssh", ".ssh"),
    ("STAT server.key", "server.key"),
    ("DELE server.key", "server.key"),
    ("DELE .ssh/authorized_keys", ".ssh/authorized_keys"),
    ("RMD .ssh", ".ssh"),
    ("MKD .ssh/new", ".ssh/new"),
    ("MKD new.key", "new.key"),
    ("RNFR server.key", "server.key"),
    ("RNFR .ssh", ".ssh"),
    ("SITE CHMOD 666 server.key", "server.key"),
    ("MFMT 20200101000000 server.key", "server.key"),
    ("MDTM 20200101000000 .htaccess", ".htaccess"),
]
DATA_CASES = [
    ("RETR .ssh/authorized_keys", ".ssh/authorized_keys"),
    ("RETR server.key", "server.key"),
    ("RETR sub/../.htaccess", "sub/../.htaccess"),
    ("RETR missing.key", "missing.key"),
    ("STOR .htaccess", ".htaccess"),
    ("STOR new.key", "new.key"),
    ("STOR .ssh/authorized_keys", ".ssh/authorized_keys"),
    ("APPE server.key", "server.key"),
    ("STOU new.key", "new.key"),
    ("LIST .ssh", ".ssh"),
    ("LIST -la .ssh", ".ssh"),
    ("NLST .ssh", ".ssh"),
    ("NLST .ssh/authorized_keys", ".ssh/authorized_keys"),
    ("MLSD .ssh", ".ssh"),
]


@pytest.mark.parametrize("cmd, name", CONTROL_CASES + DATA_CASES,
                         ids=[c for c, _ in CONTROL_CASES + DATA_CASES])
def test_every_path_command_refuses_a_denied_name(denying, cmd, name):
    """550 and the same text for each, whether the name exists or not (missing.key, a name
    below .ssh that does not exist), and nothing on disk changes."""
    s, root = denying
    before = snapshot(root)
    f = s.ftps_reuse("alice")
    data = (cmd, name) in DATA_CASES
    reply = transfer_reply(f, cmd) if data else command_reply(f, cmd)
    assert reply == f"550 {name}: {REFUSED}", reply
    assert f.pwd() == "/"
    f.quit()
    assert snapshot(root) == before


def test_cwd_into_a_subdirectory_then_up_into_a_denied_one(denying):
    """The path is resolved before it is judged: from sub, ../.ssh is /.ssh."""
    s, _ = denying
    f = s.ftps_reuse("alice")
    f.cwd("sub")
    assert command_reply(f, "CWD ../.ssh") == f"550 ../.ssh: {REFUSED}"
    assert transfer_reply(f, "RETR ../.ssh/authorized_keys") == \
        f"550 ../.ssh/authorized_keys: {REFUSED}"
    assert f.pwd() == "/sub"
    f.quit()


def test_rename_to_or_from_a_denied_name_is_refused(denying):
    """RNTO to a denied name (or into a denied directory) is refused after RNFR said 350; the
    file keeps its name."""
    s, root = denying
    f = s.ftps_reuse("alice")
    for target in (".htaccess", "renamed.key", ".ssh/visible.txt", "sub/.ssh"):
        assert f.sendcmd("RNFR visible.txt").startswith("350")
        assert command_reply(f, f"RNTO {target}") == f"550 {target}: {REFUSED}"
    f.quit()
    assert os.path.exists(os.path.join(root, "visible.txt"))
    assert not os.path.exists(os.path.join(root, "renamed.key"))
    assert not os.path.exists(os.path.join(root, "sub", ".ssh"))


def test_stou_passes_over_a_denied_unique_name(make_server, env):
    """deny_file = *.1: STOU visible.txt, whose name is taken, does not stop at visible.txt.1
    (denied) but takes visible.txt.2."""
    root_dir, roots = make_roots(env)
    s = make_server(root_dir=root_dir, deny_file="*.1", write_enable="yes")
    f = s.ftps_reuse("alice")
    f.storbinary("STOU visible.txt", io.BytesIO(b"unique"))
    f.quit()
    assert not os.path.exists(os.path.join(roots["alice"], "visible.txt.1"))
    assert open(os.path.join(roots["alice"], "visible.txt.2"), "rb").read() == b"unique"


def test_a_denied_name_like_an_ls_option_does_not_tell_it_exists(make_server, env):
    """NLST -xfile: a "-word" that names an entry is that entry, else ls options. A denied
    name is taken as options whether or not it exists, so the two answers are the same."""
    root_dir, roots = make_roots(env)
    with open(os.path.join(roots["alice"], "-xfile"), "w") as fh:
        fh.write("x")
    s = make_server(root_dir=root_dir, deny_file="-x*")
    f = s.ftps_reuse("alice")
    assert f.nlst("-xfile") == f.nlst("-xnone") == sorted(f.nlst())
    assert "-xfile" not in f.nlst()
    f.quit()


def test_listings_leave_denied_names_out(denying):
    """LIST -a, NLST, MLSD, STAT and a wildcard: no denied name shows; the others do (UPPER.KEY
    too: matching is case-sensitive)."""
    s, _ = denying
    f = s.ftps_reuse("alice")
    lines = []
    f.retrlines("LIST -a", lines.append)
    names = {l.split()[-1] for l in lines}
    assert names == {".", "..", ".cache", "old.bak", "sub", "UPPER.KEY", "visible.txt"}, lines
    assert sorted(f.nlst()) == ["UPPER.KEY", "old.bak", "sub", "visible.txt"]
    assert sorted(n for n, _ in f.mlsd()) == [".", ".cache", "UPPER.KEY", "old.bak", "sub",
                                              "visible.txt"]
    stat = f.sendcmd("STAT -a .")
    assert "visible.txt" in stat and "sub" in stat
    for denied in (".ssh", "server.key", ".htaccess"):
        assert denied not in stat, stat
    assert f.nlst("*e*") == ["visible.txt"]          # server.key matches, and is left out
    assert f.nlst("*.KEY") == ["UPPER.KEY"]
    f.quit()


def test_curl_lists_no_denied_name(denying):
    """The same with another client: curl's LIST and NLST (--list-only)."""
    s, _ = denying
    listing = s.curl(s.url("")).stdout.decode()
    names = s.curl("--list-only", s.url("")).stdout.decode().split()
    assert "visible.txt" in listing and "server.key" not in listing, listing
    assert sorted(names) == ["UPPER.KEY", "old.bak", "sub", "visible.txt"], names
    r = s.curl(s.url(".ssh/authorized_keys"), check=False)
    assert r.returncode != 0 and b"ssh-ed25519" not in r.stdout, r


def test_refusals_are_logged(denying, syslog):
    if not (syslog and syslog.available):
        pytest.skip(syslog.reason if syslog else "no syslog")
    s, _ = denying
    # Names of this test's own: the syslog file holds the whole run's lines, and
    # test_every_path_command_refuses_a_denied_name has logged RETR .ssh/authorized_keys and
    # DELE server.key already, so with those names this test would pass without its own lines.
    token = secrets.token_hex(6)
    f = s.ftps_reuse("alice")
    transfer_reply(f, f"RETR .ssh/{token}")
    command_reply(f, f"DELE sub/../{token}.key")
    f.quit()
    want = f'RETR "/.ssh/{token}" refused: ".ssh" matches deny_file ".ssh"'
    text = syslog.text(wait_for=want)
    assert want in text
    want = f'DELE "/{token}.key" refused: "{token}.key" matches deny_file "*.key"'
    assert want in syslog.text(wait_for=want)


def test_case_sensitive_unless_the_pattern_says(make_server, env):
    """*.key does not match UPPER.KEY; *.[kK][eE][yY] does."""
    root_dir, _ = make_roots(env)
    s = make_server(root_dir=root_dir, deny_file="*.key")
    f = s.ftps_reuse("alice")
    f.sendcmd("TYPE I")
    assert f.sendcmd("SIZE UPPER.KEY") == "213 6"
    f.quit()
    s = make_server(root_dir=root_dir, deny_file="*.[kK][eE][yY]")
    f = s.ftps_reuse("alice")
    f.sendcmd("TYPE I")
    assert command_reply(f, "SIZE UPPER.KEY") == f"550 UPPER.KEY: {REFUSED}"
    assert "UPPER.KEY" not in f.nlst()
    f.quit()


def test_hidden_names_are_left_out_of_listings_but_reachable(make_server, env):
    root_dir, roots = make_roots(env)
    s = make_server(root_dir=root_dir, hide_file=HIDE, write_enable="yes")
    f = s.ftps_reuse("alice")
    lines = []
    f.retrlines("LIST -a", lines.append)
    names = {l.split()[-1] for l in lines}
    assert "old.bak" not in names and ".cache" not in names, lines
    assert {".ssh", "server.key", "visible.txt"} <= names, lines
    assert "old.bak" not in f.nlst() and f.nlst("*.bak") == []
    assert {n for n, _ in f.mlsd()} & {"old.bak", ".cache"} == set()
    assert "old.bak" not in f.sendcmd("STAT -a .")
    # by name: RETR, SIZE, MLST, STAT, CWD and a listing of the hidden directory
    out = io.BytesIO()
    f.retrbinary("RETR old.bak", out.write)
    assert out.getvalue() == TREE["old.bak"]
    assert f.sendcmd("SIZE old.bak") == "213 7"
    assert f.sendcmd("MLST old.bak").startswith("250")
    assert "old.bak" in f.sendcmd("STAT old.bak")
    assert f.nlst(".cache") == [".cache/c.txt"]
    f.cwd(".cache")
    assert f.nlst() == ["c.txt"]
    f.cwd("/")
    # and made: a new hidden name is stored, and stays out of the listing
    f.storbinary("STOR new.bak", io.BytesIO(b"n"))
    assert "new.bak" not in f.nlst()
    f.quit()
    assert open(os.path.join(roots["alice"], "new.bak"), "rb").read() == b"n"


def test_account_sections_set_their_own_lists(make_server, env):
    """The main deny_file keeps alice and carol out of .ssh; bob's [user] section empties it.
    [group shared] (alice and bob) hides *.bak; carol, in no section, sees it."""
    root_dir, _ = make_roots(env, users=("alice", "bob", "carol"))
    s = make_server(root_dir=root_dir, deny_file=".ssh", sections=(
        "[user bob]\ndeny_file =\n[group shared]\nhide_file = *.bak\n"))
    seen = {}
    for user in ("alice", "bob", "carol"):
        f = s.ftps_reuse(user)
        try:
            f.sendcmd("CWD .ssh")
            entered = True
            f.cwd("/")
        except ftplib.error_perm as e:
            assert str(e) == f"550 .ssh: {REFUSED}", e
            entered = False
        seen[user] = (entered, "old.bak" in f.nlst())
        f.quit()
    assert seen == {"alice": (False, False), "bob": (True, False), "carol": (False, True)}, seen


def test_the_user_process_refuses_a_hostile_fronts_rename(make_server, env):
    """A front taken over may send RNTO with any old name and no RNFR (the test build's XTST
    RNTO): the user process judges that name too, so .ssh is not renamed away."""
    if not os.path.exists(HOOKS_BINARY):
        pytest.skip("build/ftpsd-testhooks is built by make check")
    root_dir, roots = make_roots(env)
    s = make_server(root_dir=root_dir, deny_file=DENY, binary=HOOKS_BINARY)
    f = s.ftps_reuse("alice")
    assert command_reply(f, "XTST RNTO /.ssh moved") == f"550 /.ssh: {REFUSED}"
    assert command_reply(f, "XTST RNTO /sub/../server.key moved") == \
        f"550 /sub/../server.key: {REFUSED}"
    assert f.sendcmd("XTST RNTO /visible.txt moved.txt").startswith("250")
    f.quit()
    assert os.path.isdir(os.path.join(roots["alice"], ".ssh"))
    assert os.path.exists(os.path.join(roots["alice"], "server.key"))
    assert not os.path.exists(os.path.join(roots["alice"], "moved"))


def test_anonymous_sessions_take_the_main_lists(make_server, env):
    """An anonymous session (which takes no [user] or [group] section) is kept from denied
    names and does not see hidden ones, as the main keys say; a [user ftp] section changes
    nothing for it."""
    anon = env.path("deny-anon-" + secrets.token_hex(3))
    os.makedirs(os.path.join(anon, "pub"))
    for name, data in (("pub/README", b"public\n"), ("pub/secret.key", b"key\n"),
                       ("pub/old.bak", b"old\n")):
        with open(os.path.join(anon, name), "wb") as fh:
            fh.write(data)
        os.chmod(os.path.join(anon, name), 0o644)
    s = make_server(anonymous="yes", anon_root=anon, deny_file="*.key", hide_file="*.bak",
                    sections="[user ftp]\ndeny_file =\nhide_file =\n")
    f = s.ftps_reuse()
    f.login("anonymous", "guest@")
    f.prot_p()
    assert sorted(f.nlst("pub")) == ["pub/README"]
    assert transfer_reply(f, "RETR pub/secret.key") == f"550 pub/secret.key: {REFUSED}"
    out = io.BytesIO()
    f.retrbinary("RETR pub/old.bak", out.write)
    assert out.getvalue() == b"old\n"
    f.quit()


def test_a_home_below_a_denied_name_starts_at_the_root(make_server, env):
    """root_dir above the home, and the home inside a denied directory: the session starts at
    the root, where its requests are not all refused."""
    s = make_server(root_dir=os.path.dirname(env.home("alice")), deny_file="alice")
    f = s.ftps_reuse("alice")
    assert f.pwd() == "/"
    assert command_reply(f, "CWD alice") == f"550 alice: {REFUSED}"
    f.quit()


@pytest.mark.parametrize("text, message", [
    ("deny_file = .ssh, [abc\n", ":5: deny_file: pattern '[abc' has a '[' without its closing ']'"),
    ("hide_file = .ssh/id_rsa\n",
     ":5: hide_file: pattern '.ssh/id_rsa' contains '/': a pattern matches one name in a path, "
     "not a path"),
    ("deny_file = a,,b\n", ":5: deny_file: pattern '' is empty (two commas, or one at an end)"),
    ("deny_file = [[:word:]]\n",
     ":5: deny_file: pattern '[[:word:]]' names an unknown character class"),
    ("deny_file = " + ",".join(f"p{i}" for i in range(65)) + "\n",
     ":5: deny_file: more than 64 patterns"),
    ("[user alice]\ndeny_file = x\\\n",
     ":6: [user alice]: deny_file: pattern 'x\\' ends in a lone '\\'"),
    ("[group shared]\nhide_file = ..\n",
     ":6: [group shared]: hide_file: pattern '..' names '.' or '..', which are never the name "
     "of a file"),
])
def test_check_names_a_bad_pattern(env, tmp_path, text, message):
    conf = tmp_path / "d.conf"
    r = check_config(env, conf, text)
    assert r.returncode != 0, r
    assert f"{conf}{message}" in r.stderr, r.stderr


def test_check_accepts_good_lists(env, tmp_path):
    r = check_config(env, tmp_path / "ok.conf",
                     "deny_file = {.ssh,.gnupg,*.key,.htaccess}\nhide_file = *.bak, [,;]x, a\\,b\n"
                     "[user alice]\ndeny_file =\n", "-o", "hide_file=.cache")
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
