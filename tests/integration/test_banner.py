"""banner_file: the 220 greeting from a file (a legal notice of several lines), per virtual host
too; what a session does with a file it cannot read, and what ftpsd -t says of one."""
import os
import subprocess

import pytest

from ftpsd_fixture import BINARY, NOPRIV, wrapper_env

NOTICE = ("Authorized users only.\r\n"
          "220 this line is text, not the end of the reply\n"
          "Tab\there, bell\a there.\n")


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    os.chmod(p, 0o644)
    return str(p)


def test_greeting_from_the_file(make_server, tmp_path):
    """Each line of the file is a line of the 220 reply; a line that starts with digits is
    indented so that no client takes it for the reply's end; control characters are '?'."""
    s = make_server(banner_file=write(tmp_path, "notice.txt", NOTICE))
    r = s.raw()
    code, lines = r.reply()
    assert code == 220
    assert lines == ["220-Authorized users only.",
                     " 220 this line is text, not the end of the reply",
                     "220 Tab?here, bell? there."], lines
    r.starttls(s.env.cert)
    r.login("alice")
    r.close()


def test_virtual_hosts_greet_with_their_own(make_server, tmp_path):
    """A section's banner_file, or its banner line (which wins over the main part's file); a
    section that sets neither greets with the main part's file."""
    main = write(tmp_path, "main.txt", "Main notice.\nSecond line.\n")
    own = write(tmp_path, "own.txt", "Own notice.\n")
    s = make_server(banner_file=main, sections=(
        f"[host file.example]\nbanner_file = {own}\n"
        "[host line.example]\nbanner = Line greeting\n"
        "[host none.example]\nroot_dir = /\n"))
    r = s.raw()
    assert r.reply() == (220, ["220-Main notice.", "220 Second line."])
    assert r.cmd("HOST file.example") == (220, ["220 Own notice."])
    r.close()
    r = s.raw()
    r.reply()
    assert r.cmd("HOST line.example") == (220, ["220 Line greeting"])
    r.close()
    r = s.raw()
    r.reply()
    assert r.cmd("HOST none.example") == (220, ["220-Main notice.", "220 Second line."])
    r.close()


def test_a_file_the_session_cannot_read_gives_the_banner_line(make_server, tmp_path, syslog):
    """Removed after the check: the session still greets (with the banner line) and logs why."""
    path = write(tmp_path, "gone.txt", "Notice.\n")
    s = make_server(banner_file=path, banner="Plain greeting")
    os.unlink(path)
    r = s.raw()
    assert r.reply() == (220, ["220 Plain greeting"])
    r.close()
    if syslog is not None and syslog.available:
        want = f"banner_file {path}: No such file or directory; the greeting is the banner line"
        assert want in syslog.text(wait_for=want)


@pytest.mark.parametrize("data,why", [
    (None, "No such file or directory"),
    ("", "empty"),
    ("x" * 8193, "longer than 8192 bytes"),
    ("line\n" * 101, "more than 100 lines"),
    (b"binary\0file\n", "not a text file (it holds a NUL byte)"),
], ids=["missing", "empty", "too-long", "too-many-lines", "nul"])
def test_check_reports_a_greeting_file_it_cannot_use(env, tmp_path, data, why):
    path = str(tmp_path / "b.txt") if data is None else write(tmp_path, "b.txt", data)
    conf = tmp_path / "ftpsd.conf"
    conf.write_text(f"tls_cert_file = {env.cert}\ntls_key_file = {env.key}\n"
                    f"nopriv_user = {NOPRIV[0]}\nempty_dir = {env.empty}\n"
                    f"banner_file = {path}\n")
    r = subprocess.run([BINARY, "-t", "-f", str(conf)], capture_output=True, text=True,
                       env=wrapper_env(env), timeout=20)
    assert r.returncode == 1, r
    assert f"{conf}:5: banner_file {path}: {why}" in r.stderr, r.stderr
    # The limits themselves are allowed.
    ok = write(tmp_path, "ok.txt", ("y" * 80 + "\n") * 100)
    conf.write_text(conf.read_text().replace(path, ok))
    r = subprocess.run([BINARY, "-t", "-f", str(conf)], capture_output=True, text=True,
                       env=wrapper_env(env), timeout=20)
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
