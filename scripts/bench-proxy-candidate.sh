#!/usr/bin/env bash
# The planb-proxy candidate for ../shared/anchors/bench.py proxy:
#   python3 ../shared/anchors/bench.py proxy -- scripts/bench-proxy-candidate.sh
# Writes a config from LISTEN_ADDR, UPSTREAM_ADDR and WORK_DIR (set by
# bench.py) with one worker thread, like the anchors' one worker, and execs
# the release binary (PLANB_PROXY_BIN to bench another build, e.g. the musl
# one). work_stealing: false is Pingora's own tuning for this shape: each
# thread its own single-threaded runtime (measured: ~2x the req/s of the
# work-stealing runtime with one thread, which idles in scheduler wake-ups).
# ACCESS_LOG=false turns the per-request log line off (the Nginx anchor
# runs with access_log off); the default keeps it on, as in production.
set -euo pipefail
: "${LISTEN_ADDR:?set by bench.py}" "${UPSTREAM_ADDR:?set by bench.py}" "${WORK_DIR:?set by bench.py}"
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${PLANB_PROXY_BIN:-$root/target/release/planb-proxy}
[[ -x $bin ]] || { echo "bench-proxy-candidate: $bin is missing: cargo build --release -p planb-proxy" >&2; exit 1; }
conf=$WORK_DIR/planb-proxy.yaml
cat >"$conf" <<YAML
version: 1
threads: 1
work_stealing: false
pid_file: $WORK_DIR/planb-proxy.pid
upgrade_sock: $WORK_DIR/planb-proxy-upgrade.sock
grace_period_seconds: 1
graceful_shutdown_timeout_seconds: 1
proxy:
  listen: "$LISTEN_ADDR"
  admin_listen: null
  access_log: ${ACCESS_LOG:-true}
  upstream:
    address: "$UPSTREAM_ADDR"
YAML
export RUST_LOG=${RUST_LOG:-info} LOG_FORMAT=${LOG_FORMAT:-json}
exec "$bin" -c "$conf"
