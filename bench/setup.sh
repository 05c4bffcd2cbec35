#!/bin/sh
# make bench, step 1: what the benchmarks need from Debian (run as root; idempotent).
#
# Installed with apt-get: the client tools and build helpers, and the shared libraries the
# compared servers link against. The servers themselves (vsftpd, ProFTPD with mod_tls from
# proftpd-mod-crypto, Pure-FTPd, OpenSSH's sshd) are only downloaded and unpacked with dpkg -x
# into bench/.work/root: they conflict with each other as packages, and an unpacked package runs
# no maintainer script, so no system service is enabled or started and /etc is not touched.
# The bench starts each one itself, per connection, on loopback ports.
set -e
cd "$(dirname "$0")"
WORK="$(pwd)/.work"
ROOTFS="$WORK/root"
DEBS="$WORK/debs"

TOOLS="curl openssl ca-certificates procps time openssh-client gcc make libc6-dev libssl-dev
       libpam0g-dev libcrypt-dev
       systemd passwd login strace"
# What the unpacked servers link against (checked with ldd below).
LIBS="libwrap0 libcap2 libpam0g libpam-modules libpam-runtime libssl3 libsodium23 libacl1
      libcrypt1 libhiredis0.14 libidn2-0 libmemcached11 libmemcachedutil2 libpcre2-8-0
      libpcre2-posix3 zlib1g libncursesw6 libtinfo6 libaudit1 libcom-err2 libgssapi-krb5-2
      libkrb5-3 libselinux1 libsystemd0"
SERVERS="vsftpd proftpd-core proftpd-mod-crypto pure-ftpd openssh-server"

missing=""
for p in $TOOLS $LIBS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
export DEBIAN_FRONTEND=noninteractive
updated=no
if [ -n "$missing" ]; then
    echo "bench: apt-get install$missing"
    apt-get update -qq >/dev/null 2>&1 || true
    updated=yes
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# perf is optional (make bench-profile); its Debian package follows the running kernel's name.
if ! command -v perf >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends linux-perf >/dev/null 2>&1 ||
        echo "bench: linux-perf not installable; profiles will use strace only" >&2
fi

mkdir -p "$DEBS" "$ROOTFS"
stamp="$ROOTFS/.unpacked"
want="$SERVERS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    [ "$updated" = yes ] || apt-get update -qq >/dev/null 2>&1 || true
    rm -rf "$ROOTFS" && mkdir -p "$ROOTFS"
    rm -f "$DEBS"/*.deb
    # apt-get download works in the current directory; _apt cannot write here, which apt
    # reports as a warning only.
    (cd "$DEBS" && apt-get download $SERVERS >/dev/null 2>&1) || {
        echo "bench: apt-get download $SERVERS failed" >&2
        exit 1
    }
    for d in "$DEBS"/*.deb; do
        dpkg -x "$d" "$ROOTFS"
        echo "$(dpkg-deb -f "$d" Package) $(dpkg-deb -f "$d" Version)" >> "$ROOTFS/.versions"
    done
    echo "$want" > "$stamp"
fi

bad=0
for b in usr/sbin/vsftpd usr/sbin/proftpd usr/sbin/pure-ftpd usr/sbin/sshd \
         usr/lib/proftpd/mod_tls.so; do
    if [ ! -e "$ROOTFS/$b" ]; then
        echo "bench: $b missing from the unpacked packages" >&2
        bad=1
    elif ldd "$ROOTFS/$b" | grep -q 'not found'; then
        echo "bench: $b lacks libraries:" >&2
        ldd "$ROOTFS/$b" | grep 'not found' >&2
        bad=1
    fi
done
exit $bad
