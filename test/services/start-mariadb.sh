#!/usr/bin/env bash
# MariaDB (Debian 12: 10.11) on 127.0.0.1:3306 for the MySQL-backed tests.
#
#  * If a server already answers on 127.0.0.1:3306 as root with an empty password (the
#    node-svc machines start one before the session), it is reused as it is.
#  * Otherwise mariadb-server is installed from Debian and mariadbd is started with
#    start-stop-daemon (no systemd here; policy-rc.d stops the package from starting it).
#  * Either way root@localhost and root@127.0.0.1 end up able to log in without a
#    password (Debian's default root is unix_socket-only), and database firn_test exists.
#
# Writes /etc/firn-test/mariadb.env. Idempotent. `--packages` prints the Debian packages
# this script needs (start-all.sh installs everything in one apt-get run).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
PKGS=(mariadb-server mariadb-client)
if [ "${1:-}" = --packages ]; then
  # a running server needs no packages, except the client used below
  if port_open 127.0.0.1 3306; then echo mariadb-client; else echo "${PKGS[*]}"; fi
  exit 0
fi
require_root

PORT=3306
SOCK=/run/mysqld/mysqld.sock
# --no-defaults: ignore any ~/.my.cnf that could carry a password or another socket
tcp_root() { mariadb --no-defaults --connect-timeout=3 -h 127.0.0.1 -P "$PORT" -u root -N -B "$@"; }
tcp_root_ok() { tcp_root -e 'SELECT 1' >/dev/null 2>&1; }

if ! command -v mariadb >/dev/null 2>&1; then apt_install mariadb-client; fi

if tcp_root_ok; then
  log "reusing the server on 127.0.0.1:$PORT"
elif port_open 127.0.0.1 "$PORT"; then
  # Someone listens but root needs a password: as OS root we may still get in through
  # the unix socket (unix_socket auth) and fix the accounts below; else give up.
  mariadb --no-defaults --protocol=socket -S "$SOCK" -u root -e 'SELECT 1' >/dev/null 2>&1 \
    || die "a server listens on 127.0.0.1:$PORT but root cannot log in without a password (neither over TCP nor the socket $SOCK); stop it or give root an empty password"
  log "server on :$PORT needs a password for root over TCP; fixing through the socket"
else
  apt_install "${PKGS[@]}"
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  install -d -o mysql -g adm -m 2750 /var/log/mysql
  # the postinst normally initialises the data dir; do it if it did not
  if [ ! -d /var/lib/mysql/mysql ]; then
    log "initialising /var/lib/mysql"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/var/log/mysql/install-db.log 2>&1 \
      || die "mariadb-install-db failed, see /var/log/mysql/install-db.log"
  fi
  log "starting mariadbd"
  # Options on the command line override whatever /etc/mysql says (Debian logs to syslog,
  # and there is no syslogd here; the port/bind address may differ on another machine).
  # mariadbd refuses to run as root: --user=mysql makes it drop privileges itself.
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- \
    --user=mysql --bind-address=127.0.0.1 --port="$PORT" --socket="$SOCK" \
    --pid-file=/run/mysqld/mysqld.pid --log-error=/var/log/mysql/error.log
  mark_started mariadb
  wait_until 60 mariadb --no-defaults --protocol=socket -S "$SOCK" -u root -e 'SELECT 1' \
    || die "mariadbd did not answer within 60 s, see /var/log/mysql/error.log"
fi

# --- make root passwordless on both host entries ------------------------------------------
# Run SQL as root through TCP if that works, else through the socket (unix_socket auth).
sql() {
  if tcp_root_ok; then tcp_root -e "$1"
  else mariadb --no-defaults --protocol=socket -S "$SOCK" -u root -N -B -e "$1"; fi
}
for h in localhost 127.0.0.1; do
  # SHOW CREATE USER fails when the account does not exist
  if ! def=$(sql "SHOW CREATE USER 'root'@'$h'" 2>/dev/null); then
    log "creating root@$h (no password)"
    sql "CREATE USER 'root'@'$h' IDENTIFIED BY ''; GRANT ALL PRIVILEGES ON *.* TO 'root'@'$h' WITH GRANT OPTION; FLUSH PRIVILEGES"
  elif grep -qE "USING '[^']+'|BY PASSWORD '[^']+'" <<<"$def"; then
    # a password hash, or Debian's "USING 'invalid' OR unix_socket": allow the empty password
    # and keep unix_socket for OS root
    log "root@$h has a password ($def); allowing the empty password"
    sql "ALTER USER 'root'@'$h' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES"
  fi
done
sql 'CREATE DATABASE IF NOT EXISTS firn_test' >/dev/null

# --- verify: TCP as root without password, and root@localhost via the socket from a
#     non-root OS user (so unix_socket cannot be what lets it in)
tcp_root_ok || die "root cannot log in over 127.0.0.1:$PORT without a password"
sock=$(tcp_root -e 'SELECT @@socket')
if [ -S "$sock" ]; then
  runuser -u nobody -- mariadb --no-defaults --protocol=socket -S "$sock" -u root -e 'SELECT 1' >/dev/null 2>&1 \
    || die "root@localhost cannot log in through $sock without a password"
fi
ver=$(tcp_root -e 'SELECT VERSION()')
write_env "$FIRN_ETC/mariadb.env" \
  "FIRN_TEST_MYSQL_URL=mysql://root@127.0.0.1:$PORT" \
  "MYSQL_HOST=127.0.0.1" "MYSQL_PORT=$PORT" "MYSQL_USER=root" "MYSQL_PASSWORD=" \
  "MYSQL_DATABASE=firn_test" "MYSQL_SOCKET=$sock" "MYSQL_VERSION=$ver"
echo "OK mariadb: mysql://root@127.0.0.1:$PORT version=$ver ($(elapsed))"
