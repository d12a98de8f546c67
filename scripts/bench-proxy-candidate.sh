#!/usr/bin/env bash
# planb-proxy as bench/bench.py proxy (make bench-proxy) and bench/cpu-per-request.py
# and bench/instructions-per-request.sh start it.
# Its config is the production file, systemd/proxy.yaml, with only these
# changed: the addresses (LISTEN_ADDR, UPSTREAM_ADDR from bench.py, the admin
# listener on a free port), the paths (under WORK_DIR), no SSM (the upstream
# address is given), `threads:` (THREADS, default 1 like Nginx's and HAProxy's one
# worker; bench.py sets it to the workers asked for) and access_log (ACCESS_LOG from
# bench.py: true with the log on). Every other key — Pingora's and ours —
# is what production runs. PLANB_PROXY_BIN selects another build, e.g. the
# shipped static one: target/x86_64-unknown-linux-musl/release/planb-proxy.
# LISTEN_READ_BUFFER_BYTES and LISTEN_WRITE_BUFFER_BYTES, when set (a size, 0 or
# null), replace the client connections' buffer keys, to compare the settings
# of those two keys against what ships.
set -euo pipefail
: "${LISTEN_ADDR:?set by bench.py}" "${UPSTREAM_ADDR:?set by bench.py}" "${WORK_DIR:?set by bench.py}"
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PLANB_PROXY_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/planb-proxy}
[[ -x $bin ]] || { echo "bench-proxy-candidate: $bin is missing: cargo build --release -p planb-proxy" >&2; exit 1; }
src=$root/systemd/proxy.yaml
conf=$WORK_DIR/planb-proxy.yaml

# Each substitution must hit exactly one line of the production file: a
# renamed key fails here instead of silently benchmarking another config.
subst() { # PATTERN REPLACEMENT (sed, whole line)
  local n
  n=$(grep -c -E "^$1\$" "$conf" || true)
  [[ $n == 1 ]] || { echo "bench-proxy-candidate: '$1' matches $n lines of $src" >&2; exit 1; }
  sed -i -E "s|^$1\$|$2|" "$conf"
}
cp "$src" "$conf"
subst 'threads: [0-9]+' "threads: ${THREADS:-1}"
subst 'pid_file: .*' "pid_file: $WORK_DIR/planb-proxy.pid"
subst 'upgrade_sock: .*' "upgrade_sock: $WORK_DIR/planb-proxy-upgrade.sock"
subst '  listen: .*' "  listen: \"$LISTEN_ADDR\""
subst '  admin_listen: .*' '  admin_listen: "127.0.0.1:0"'
subst '  access_log: .*' "  access_log: ${ACCESS_LOG:-true}"
subst '    ssm_parameter: .*' '    ssm_parameter: null'
subst '    address: .*' "    address: \"$UPSTREAM_ADDR\""
[[ -z ${LISTEN_READ_BUFFER_BYTES:-} ]] ||
  subst '  listen_read_buffer_bytes: .*' "  listen_read_buffer_bytes: $LISTEN_READ_BUFFER_BYTES"
[[ -z ${LISTEN_WRITE_BUFFER_BYTES:-} ]] ||
  subst '  listen_write_buffer_bytes: .*' "  listen_write_buffer_bytes: $LISTEN_WRITE_BUFFER_BYTES"
diff -u "$src" "$conf" >&2 || true
export RUST_LOG=${RUST_LOG:-info} LOG_FORMAT=${LOG_FORMAT:-json}
exec "$bin" -c "$conf"
