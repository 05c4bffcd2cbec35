"""Every configuration key the code knows is documented in ftpsd.conf(5), and the man pages
format without warnings."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def code_keys():
    src = open(os.path.join(ROOT, "src", "config.c")).read()
    table = src[src.index("static const struct key keys[]"):]
    table = table[:table.index("};")]
    return re.findall(r'\{"([a-z0-9_]+)",', table)


def test_every_key_is_in_the_man_page():
    man = open(os.path.join(ROOT, "man", "ftpsd.conf.5")).read()
    # ".B key" starts an entry; ".B a \", \" b" documents two keys at once.
    documented = set()
    for line in re.findall(r"^\.BR? (.+)$", man, re.M):
        documented.update(re.findall(r"[a-z][a-z0-9_]+", line))
    keys = code_keys()
    assert len(keys) >= 30
    missing = [k for k in keys if k not in documented]
    assert not missing, f"keys missing from man/ftpsd.conf.5: {missing}"


def test_every_option_is_in_ftpsd_8():
    man = open(os.path.join(ROOT, "man", "ftpsd.8")).read()
    main = open(os.path.join(ROOT, "src", "main.c")).read()
    opts = re.search(r'getopt\(argc, argv, "([^"]+)"\)', main).group(1).replace(":", "")
    for o in opts:
        if o == "h":
            continue
        assert re.search(rf"^\.BI? \\-{o}\b", man, re.M), f"-{o} is not documented in ftpsd(8)"


def test_man_pages_lint_clean():
    for page in ("ftpsd.8", "ftpsd.conf.5"):
        r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", os.path.join(ROOT, "man", page)],
                           capture_output=True, text=True, env={**os.environ, "MANWIDTH": "80"})
        assert r.returncode == 0
        assert r.stderr.strip() == "", r.stderr
