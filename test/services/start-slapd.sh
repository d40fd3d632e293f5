#!/usr/bin/env bash
# OpenLDAP (Debian 12: slapd 2.5) on ldap://127.0.0.1:3890 for the LDAP login tests.
# Suffix dc=firn,dc=test; users under ou=people: alice/alicepw and bob/bobpw (cn, mail).
# Config and data: test/services/slapd/{slapd.conf,init.ldif}; database and pid file in
# /var/lib/firn-test/slapd. Writes /etc/firn-test/ldap.env.
#
# The package is installed with debconf `slapd/no_configuration=true`: Debian's postinst
# then builds no cn=config database and no dc=nodomain directory (and policy-rc.d stops it
# from starting a server): ~5 s, nothing to undo. We run our own slapd with `-f slapd.conf`.
#
# Idempotent: reuses a running server (restarted only if slapd.conf changed), loads
# init.ldif entries only when they are missing. `--packages` prints the Debian packages.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
PKGS=(slapd ldap-utils)
if [ "${1:-}" = --packages ]; then echo "${PKGS[*]}"; exit 0; fi
require_root

URL=ldap://127.0.0.1:3890
BASE=dc=firn,dc=test
ADMIN_DN=cn=admin,$BASE
ADMIN_PW=secret                        # rootpw in slapd.conf
SRC=$HERE/slapd
D=/var/lib/firn-test/slapd             # fixed: slapd.conf names these paths
PIDFILE=$D/slapd.pid

apt_install "${PKGS[@]}"      # preseeds slapd/no_configuration=true (lib.sh)

install -d -m 0700 "$D" "$D/db"
# restart a running server whose config differs from ours
if write_if_changed "$D/slapd.conf" "$(cat "$SRC/slapd.conf")" && alive "$PIDFILE"; then
  log "slapd.conf changed: restarting slapd"; stop_pidfile "$PIDFILE"
fi
slaptest -Q -u -f "$D/slapd.conf" || die "slaptest rejected $SRC/slapd.conf"

if ! alive "$PIDFILE"; then
  port_open 127.0.0.1 3890 && die "127.0.0.1:3890 is taken by another process"
  log "starting slapd on $URL"
  # runs as root (no -u): the data dir is ours, and nothing else uses this server
  /usr/sbin/slapd -f "$D/slapd.conf" -h "$URL/" || die "slapd did not start (try: slapd -d 1 -f $D/slapd.conf -h $URL/)"
  mark_started slapd
fi
wait_until 10 ldapsearch -x -LLL -H "$URL" -s base -b '' namingContexts || die "slapd does not answer on $URL"

# load what is missing (ldapadd -c goes on past "Already exists")
have() { ldapsearch -x -LLL -H "$URL" -b "$BASE" "(uid=$1)" dn 2>/dev/null | grep -q '^dn:'; }
if ! have alice || ! have bob; then
  log "loading $SRC/init.ldif"
  ldapadd -c -x -H "$URL" -D "$ADMIN_DN" -w "$ADMIN_PW" -f "$SRC/init.ldif" >/dev/null 2>&1 || true
fi
for u in alice:alicepw bob:bobpw; do
  who=$(ldapwhoami -x -H "$URL" -D "uid=${u%%:*},ou=people,$BASE" -w "${u#*:}" 2>&1) \
    || die "bind as ${u%%:*} failed: $who"
done

write_env "$FIRN_ETC/ldap.env" \
  "LDAP_URL=$URL" "LDAP_BASE_DN=$BASE" "LDAP_PEOPLE_DN=ou=people,$BASE" \
  "LDAP_ADMIN_DN=$ADMIN_DN" "LDAP_ADMIN_PASSWORD=$ADMIN_PW" \
  "LDAP_USERS=alice:alicepw,bob:bobpw"
echo "OK slapd $(dpkg-query -W -f='${Version}' slapd): $URL base=$BASE users=alice,bob pid=$(cat "$PIDFILE") ($(elapsed))"
