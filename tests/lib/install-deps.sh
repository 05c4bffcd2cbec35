#!/bin/sh
# Installs the Debian packages the build and the tests need, skipping what is present.
# Run as root (CI is root); otherwise only reports what is missing.
# With arguments, only those packages (make deb passes its build dependencies).
PKGS="gcc make libc6-dev libssl-dev libpam0g-dev libcap-ng-dev libseccomp-dev openssl
      libpam-wrapper libnss-wrapper libpam-modules python3 python3-pytest python3-cryptography curl lftp
      rsyslog systemd procps passwd xinetd fail2ban sslscan testssl.sh clang-format cppcheck haproxy
      dpkg-dev debhelper lintian valgrind strace logrotate"
[ $# -gt 0 ] && PKGS="$*"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing (run as root to install them)" >&2
    exit 0
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
