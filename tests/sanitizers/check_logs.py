#!/usr/bin/python3
"""make check-asan: fails if any sanitizer log in LOGDIR holds anything.

Every ftpsd process of the run writes LOGDIR/asan.PID (session processes create theirs, empty,
before they confine themselves: tests/sanitizers/sandbox_hooks.c), so an empty directory means
the options never reached the server and is a failure too. A clean log is empty: any text
(an ASan, UBSan or LSan report, a warning of the runtime) fails the run.

The runtime does not symbolize (symbolize=0: a chrooted, filtered process cannot start
llvm-symbolizer); frames are printed as (module+offset) and symbolized here.

usage: check_logs.py LOGDIR
"""
import os
import re
import shutil
import subprocess
import sys

FRAME = re.compile(r"^(\s*#\d+ 0x[0-9a-f]+)\s+\(([^()\s]+)\+(0x[0-9a-f]+)\)(.*)$")


def symbolizer():
    for tool in ("llvm-symbolizer", "llvm-symbolizer-14", "llvm-symbolizer-15",
                 "llvm-symbolizer-16"):
        path = shutil.which(tool)
        if path:
            return lambda mod, off: _llvm(path, mod, off)
    if shutil.which("addr2line"):
        return _addr2line
    return lambda mod, off: None


def _llvm(tool, mod, off):
    r = subprocess.run([tool, "--obj=" + mod, "--inlining", "--relative-address", off],
                       capture_output=True, text=True)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    pairs = [f"{lines[i]} {lines[i + 1]}" for i in range(0, len(lines) - 1, 2)]
    return " / ".join(pairs) if pairs and not lines[0].startswith("??") else None


def _addr2line(mod, off):
    r = subprocess.run(["addr2line", "-f", "-i", "-e", mod, off], capture_output=True, text=True)
    lines = r.stdout.splitlines()
    pairs = [f"{lines[i]} {lines[i + 1]}" for i in range(0, len(lines) - 1, 2)]
    return " / ".join(pairs) if pairs and not lines[0].startswith("??") else None


def symbolize(text, sym, cache):
    out = []
    for line in text.splitlines():
        m = FRAME.match(line)
        if m and os.path.exists(m.group(2)):
            key = (m.group(2), m.group(3))
            if key not in cache:
                cache[key] = sym(*key)
            if cache[key]:
                line = f"{m.group(1)} in {cache[key]} ({m.group(2)}+{m.group(3)})"
        out.append(line)
    return "\n".join(out)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    logdir = sys.argv[1]
    names = sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []
    if not names:
        print(f"check-asan: no sanitizer log in {logdir}: the options did not reach ftpsd")
        return 1
    sym = symbolizer()
    cache = {}
    bad = 0
    for name in names:
        path = os.path.join(logdir, name)
        with open(path, errors="replace") as fh:
            text = fh.read()
        if not text.strip():
            continue
        bad += 1
        print(f"==== {path}")
        print(symbolize(text, sym, cache))
    if bad:
        print(f"check-asan: {bad} of {len(names)} sanitizer logs hold reports (above)")
        return 1
    print(f"check-asan: no sanitizer report in {len(names)} process logs ({logdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
