"""Every configuration key the code knows has its entry in ftpsd.conf(5), with its range and
default, every option is in ftpsd(8) and the usage text, and the man pages format without
warnings."""
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


def key_table():
    """(name, type, min, max, default) of each key, the default as written (a string literal
    without its quotes, or a macro name)."""
    src = open(os.path.join(ROOT, "src", "config.c")).read()
    table = src[src.index("static const struct key keys[]"):]
    table = table[:table.index("};")]
    rows = re.findall(r'\{"([a-z0-9_]+)", (K_\w+), O\(\w+\), (\w+), (\w+), ("[^"]*"|\w+)\}', table)
    def num(v):  # C's octal 0777 is not Python's
        return int(v, 8) if re.fullmatch(r"0[0-7]+", v) else int(v, 0)

    return [(n, t, num(lo), num(hi), d) for n, t, lo, hi, d in rows]


def man_entries():
    """Key name -> the text of its ".TP / .B key" entry in ftpsd.conf(5), font macros and
    escapes removed."""
    lines = open(os.path.join(ROOT, "man", "ftpsd.conf.5")).read().split("\n")
    entries, i = {}, 0
    while i < len(lines) - 1:
        if lines[i] != ".TP" or not re.match(r"\.BR? ", lines[i + 1]):
            i += 1
            continue
        names = re.findall(r"[a-z][a-z0-9_]+", lines[i + 1][3:])
        j, body = i + 2, []
        while j < len(lines) and not re.match(r"\.(TP|SS|SH|PP)\b", lines[j]):
            body.append(re.sub(r"^\.(BR|BI|B|IR|IB|IP|I|RB)\s?", "", lines[j]))
            j += 1
        text = re.sub(r"\\f[BIRP]", "", " ".join(body)).replace("\\-", "-").replace('"', "")
        for n in names:
            entries[n] = re.sub(r"\s+", " ", text)
        i = j
    return entries


def test_every_key_has_an_entry_with_its_range_and_default():
    entries = man_entries()
    rows = key_table()
    assert len(rows) == len(code_keys()), "key_table() does not parse every row of keys[]"
    names = {r[0] for r in rows}
    assert not set(entries) - names, f"entries for unknown keys: {set(entries) - names}"
    problems = []
    for name, kind, lo, hi, default in rows:
        text = entries.get(name)
        if text is None:
            problems.append(f"{name}: no .TP entry")
            continue
        if kind == "K_UINT" and f"{lo} to {hi}" not in text:
            problems.append(f"{name}: range '{lo} to {hi}' not stated")
        if kind == "K_OCTAL" and f"0 to 0{hi:o}" not in text:
            problems.append(f"{name}: range '0 to 0{hi:o}' not stated")
        if default.startswith('"') and default != '""':
            v = re.escape(default.strip('"'))
            if not re.search(rf"Defaults? (\S+ and )?{v}|{v} \(default", text):
                problems.append(f"{name}: default {default} not stated")
    assert not problems, "\n".join(problems)


def test_host_keys_are_those_of_virtual_hosts():
    src = open(os.path.join(ROOT, "src", "config.c")).read()
    table = src[src.index("static const struct key host_keys[]"):]
    code = re.findall(r'\{"([a-z0-9_]+)",', table[:table.index("};")])
    man = open(os.path.join(ROOT, "man", "ftpsd.conf.5")).read()
    section = man[man.index(".SH VIRTUAL HOSTS"):]
    section = section[:section.index("may be set")]
    assert sorted(re.findall(r"^\.BR? ([a-z_]+)", section, re.M)) == sorted(code)


def test_every_option_is_in_ftpsd_8():
    man = open(os.path.join(ROOT, "man", "ftpsd.8")).read()
    main = open(os.path.join(ROOT, "src", "main.c")).read()
    opts = re.search(r'getopt\(argc, argv, "([^"]+)"\)', main).group(1).replace(":", "")
    for o in opts:
        assert re.search(rf"^\.BI? \\-{o}\b", man, re.M), f"-{o} is not documented in ftpsd(8)"
    usage = main[main.index("static void usage"):main.index("static void print_err")]
    for o in opts:
        if o != "h":
            assert f"[-{o}" in usage and f"  -{o} " in usage, f"-{o} is not in the usage text"
    synopsis = man[man.index(".SH SYNOPSIS"):man.index(".SH DESCRIPTION")]
    for o in opts:
        assert re.search(rf"^\.RB \[ \\-{o}\b", synopsis, re.M), f"-{o} is not in the SYNOPSIS"
    options = man[man.index(".SH OPTIONS"):man.index(".SH PROCESSES")]
    documented = set(re.findall(r"^\.BI? \\-([a-zA-Z])\b", options, re.M))
    assert documented <= set(opts), f"ftpsd(8) documents unknown options {documented - set(opts)}"


def test_man_pages_lint_clean():
    for page in ("ftpsd.8", "ftpsd.conf.5"):
        r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", os.path.join(ROOT, "man", page)],
                           capture_output=True, text=True, env={**os.environ, "MANWIDTH": "80"})
        assert r.returncode == 0
        assert r.stderr.strip() == "", r.stderr


def test_root_dir_and_write_enable_name_the_unit_restrictions():
    """PrivateTmp= of the shipped units loses a root under /tmp; RestrictSUIDSGID= refuses a
    setgid SITE CHMOD. The entries an admin reads for those say so."""
    entries = man_entries()
    assert "PrivateTmp=yes" in entries["root_dir"] and "/var/tmp" in entries["root_dir"]
    assert "RestrictSUIDSGID=yes" in entries["write_enable"]
    assert "setgid" in entries["write_enable"]
