#!/usr/bin/env bash
# Checks systemd/planb-proxy.service: `systemd-analyze verify` clean and
# `systemd-analyze security` exposure at most 2.0 (MAX_EXPOSURE to change).
#
# What is checked, honestly:
# - The unit must name the install paths infra uses: /usr/local/bin/planb-proxy
#   and /etc/planb-proxy/proxy.yaml.
# - `verify` refuses a unit whose ExecStart binary does not exist, and
#   `--root=` does not change that (systemd 252). So both checks run on a copy
#   of the unit in a temp dir where only those two paths are replaced by a
#   built binary and the repo's systemd/proxy.yaml; every other line is the
#   shipped one. The copy is printed as a diff.
# - The shipped proxy.yaml must pass the binary's own check (`-t`), as the
#   unit's ExecStartPre does.
# The binary: $PLANB_PROXY_BIN, else the musl release, release or debug build,
# else `cargo build -p planb-proxy` makes one.
set -euo pipefail
cd "$(dirname "$0")/.."

UNIT=systemd/planb-proxy.service
CONF=systemd/proxy.yaml
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
BIN_PATH=/usr/local/bin/planb-proxy
CONF_PATH=/etc/planb-proxy/proxy.yaml

fail() { echo "check-systemd: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (apt-get install -y systemd)"

grep -q "^ExecStart=$BIN_PATH .*-c $CONF_PATH\$" "$UNIT" || fail "$UNIT: ExecStart must run $BIN_PATH with -c $CONF_PATH"

bin=${PLANB_PROXY_BIN:-}
if [[ -z $bin ]]; then
  for b in target/x86_64-unknown-linux-musl/release/planb-proxy target/release/planb-proxy target/debug/planb-proxy; do
    if [[ -x $b ]]; then bin=$b; break; fi
  done
fi
if [[ -z $bin ]]; then
  cargo build -q -p planb-proxy
  bin=target/debug/planb-proxy
fi
bin=$(realpath "$bin")
echo "check-systemd: using $bin"

"$bin" -t -c "$CONF" >/dev/null || fail "$CONF does not pass '$bin -t'"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
copy=$tmp/planb-proxy.service
sed -e "s#$BIN_PATH#$bin#g" -e "s#$CONF_PATH#$(realpath "$CONF")#g" "$UNIT" >"$copy"
echo "check-systemd: checking a copy of $UNIT with these lines changed:"
diff "$UNIT" "$copy" | grep '^>' || true

out=$(systemd-analyze verify "$copy" 2>&1) || fail "systemd-analyze verify failed:
$out"
[[ -z $out ]] || fail "systemd-analyze verify is not clean:
$out"
echo "check-systemd: systemd-analyze verify: clean"

sec=$(systemd-analyze security --offline=true "$copy" 2>&1) || fail "systemd-analyze security failed:
$sec"
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$sec")
[[ -n $score ]] || fail "no exposure level in:
$sec"
echo "check-systemd: systemd-analyze security: exposure $score (at most $MAX_EXPOSURE)"
if ! awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'; then
  grep '✗' <<<"$sec" >&2 || true
  fail "exposure $score is above $MAX_EXPOSURE"
fi
