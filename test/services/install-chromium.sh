#!/usr/bin/env bash
# Debian's Chromium (/usr/bin/chromium) for the web monitor's browser tests, and a check
# that it really starts headless here. Writes /etc/firn-test/chromium.env.
#
# Pitfalls: as root Chromium needs --no-sandbox; and this machine's network is closed, so
# without --disable-background-networking & co. Chromium keeps trying (and failing) to
# reach Google's hosts at every start. The same flags are recorded as CHROMIUM_FLAGS for
# the tests (comma-separated, so that the env file stays KEY=VALUE without quoting).
#
# Idempotent: installs only if missing. `--packages` prints the Debian packages needed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
PKGS=(chromium)
if [ "${1:-}" = --packages ]; then echo "${PKGS[*]}"; exit 0; fi
require_root

BIN=/usr/bin/chromium
apt_install "${PKGS[@]}"
[ -x "$BIN" ] || die "$BIN missing after installing chromium"

FLAGS=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --disable-default-apps --disable-extensions --mute-audio)
profile=$(mktemp -d /tmp/firn-chromium.XXXXXX)
trap 'rm -rf "$profile"' EXIT
page='data:text/html,<html><body><p id="x">firn-chromium-ok</p></body></html>'
out=$(timeout 60 "$BIN" "${FLAGS[@]}" --user-data-dir="$profile" --dump-dom "$page" 2>"$profile/stderr") \
  || { tail -20 "$profile/stderr" >&2; die "headless chromium failed (exit $?)"; }
grep -q 'firn-chromium-ok' <<<"$out" || { tail -20 "$profile/stderr" >&2; die "headless chromium printed no DOM"; }

ver=$("$BIN" --version 2>/dev/null | awk '{print $2}')
write_env "$FIRN_ETC/chromium.env" \
  "CHROMIUM=$BIN" "CHROME_PATH=$BIN" "PUPPETEER_EXECUTABLE_PATH=$BIN" "CHROMIUM_VERSION=$ver" \
  "CHROMIUM_FLAGS=$(IFS=,; echo "${FLAGS[*]}")"
echo "OK chromium $ver: $BIN starts headless ($(elapsed))"
