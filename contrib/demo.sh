#!/bin/sh
# make demo: a throwaway certificate and account, and ftpsd serving FTPS on 127.0.0.1:2121.
# make demo-clean (demo.sh clean): removes what make demo created, as listed in demo/created.
set -e
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "make demo needs root: ftpsd changes to the logged-in user and chroots per session." >&2
    exit 1
fi
DEMO="$(pwd)/demo"
PORT="${DEMO_PORT:-2121}"
USER_NAME=ftpsdemo
# One line per thing this script created outside $DEMO ("user NAME", "file PATH"), kept
# across runs: what existed before the first run is never removed.
CREATED="$DEMO/created"

if [ "${1:-}" = clean ]; then
    rc=0
    if [ -f "$CREATED" ]; then
        while read -r kind what src; do
            case "$kind" in
            user)
                getent passwd "$what" >/dev/null || continue
                # -r for the home directory; userdel's complaint about a missing mail spool
                # (or the nopriv user's /nonexistent home) is no failure, a user left is.
                home="$(getent passwd "$what" | cut -d: -f6)"
                if [ -d "$home" ]; then userdel -r "$what" 2>/dev/null || :
                else userdel "$what" || :; fi
                if getent passwd "$what" >/dev/null; then
                    echo "demo-clean: could not remove user $what (is the demo still running?)" >&2
                    rc=1
                fi ;;
            file)
                if [ -e "$what" ] && ! cmp -s "$src" "$what"; then
                    echo "demo-clean: kept $what (changed since make demo)" >&2
                else
                    rm -f "$what"
                fi ;;
            esac
        done <"$CREATED"
    fi
    if [ "$rc" = 0 ]; then rm -rf "$DEMO"; fi
    exit "$rc"
fi

sh tests/lib/install-deps.sh
mkdir -p "$DEMO/empty"
chmod 755 "$DEMO" "$DEMO/empty"
touch "$CREATED"
created() { grep -qxF "$1" "$CREATED" || echo "$1" >>"$CREATED"; }
if [ ! -f "$DEMO/cert.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$DEMO/key.pem" -out "$DEMO/cert.pem" 2>/dev/null
    chmod 600 "$DEMO/key.pem"
fi
if ! getent passwd ftpsd-nopriv >/dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        ftpsd-nopriv
    created "user ftpsd-nopriv"
fi
if ! getent passwd "$USER_NAME" >/dev/null; then
    useradd --create-home --shell /bin/bash "$USER_NAME"
    created "user $USER_NAME"
fi
PASS="demo-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
echo "$USER_NAME:$PASS" | chpasswd
echo "hello from ftpsd" > "$(getent passwd $USER_NAME | cut -d: -f6)/hello.txt"
chown "$USER_NAME:" "$(getent passwd $USER_NAME | cut -d: -f6)/hello.txt"
if [ ! -f /etc/pam.d/ftpsd ]; then
    install -m 0644 pam.d/ftpsd /etc/pam.d/ftpsd
    created "file /etc/pam.d/ftpsd pam.d/ftpsd"
fi
cat > "$DEMO/ftpsd.conf" <<CONF
tls_cert_file = $DEMO/cert.pem
tls_key_file = $DEMO/key.pem
nopriv_user = ftpsd-nopriv
empty_dir = $DEMO/empty
write_enable = yes
pasv_min_port = 50000
pasv_max_port = 50100
CONF
./ftpsd -t -f "$DEMO/ftpsd.conf"
cat <<INFO

ftpsd demo: FTPS (explicit TLS) on 127.0.0.1:$PORT
  user:     $USER_NAME
  password: $PASS
  CA/cert:  $DEMO/cert.pem

Try, from another terminal:
  curl --ssl-reqd --cacert $DEMO/cert.pem -u '$USER_NAME:$PASS' ftp://localhost:$PORT/
  curl --ssl-reqd --cacert $DEMO/cert.pem -u '$USER_NAME:$PASS' ftp://localhost:$PORT/hello.txt
  curl --ssl-reqd --cacert $DEMO/cert.pem -u '$USER_NAME:$PASS' -T /etc/os-release ftp://localhost:$PORT/
  lftp -e 'set ftp:ssl-force true; set ssl:ca-file $DEMO/cert.pem; ls; get hello.txt; bye' \\
       -u '$USER_NAME,$PASS' -p $PORT localhost

Logs go to syslog (journalctl -t ftpsd). Press Ctrl-C to stop.
INFO
echo
echo "Then 'make demo-clean' removes what make demo created:"
while read -r kind what src; do
    case "$kind" in
    user) if [ "$what" = "$USER_NAME" ]; then
              echo "  account $what (password above, shell /bin/bash) and its home" \
                  "$(getent passwd "$what" | cut -d: -f6)"
          else echo "  system account $what"; fi ;;
    file) echo "  $what" ;;
    esac
done <"$CREATED"
echo "  $DEMO (certificate, key, configuration)"
grep -qxF "user $USER_NAME" "$CREATED" ||
    echo "(the account $USER_NAME existed before make demo: it stays, with the password above)"
exec systemd-socket-activate --accept --inetd -l "127.0.0.1:$PORT" ./ftpsd -f "$DEMO/ftpsd.conf"
