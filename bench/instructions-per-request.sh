#!/usr/bin/env bash
# Instructions per proxied request, side by side, counted by callgrind (user
# space only): deterministic to about 0.1 %, where CPU time on a shared 2-vCPU
# VM moves 20-40 % between rounds. What a change to the request path is judged
# by first; bench.py and cpu-per-request.py (kernel included) confirm it.
#
#   bench/instructions-per-request.sh [-n N] [-c C] NAME=CMD [NAME=CMD ...]
#   e.g. bench/instructions-per-request.sh bare=target/release/bare-pingora \
#          planb=scripts/bench-proxy-candidate.sh
#
# Each CMD runs under callgrind (a script in front of a binary too; cargo not) with
# bench.py's environment (LISTEN_ADDR, UPSTREAM_ADDR, WORK_DIR, ACCESS_LOG —
# ACCESS_LOG=true in the caller's environment logs every request) in front of
# an Nginx upstream (bench/nginx/upstream.conf.in); after a warm-up, the counters are
# zeroed, N requests (default 20000) go through C connections (default 20)
# with oha, and the count is dumped. Needs valgrind, nginx and oha; one target
# at a time, about a minute each.
set -euo pipefail
# Debian puts nginx in /usr/sbin; `make demo` and bench.py put oha in ~/.cargo/bin.
PATH=$PATH:/usr/sbin:$HOME/.cargo/bin
n=20000 c=20
while getopts n:c: o; do case $o in n) n=$OPTARG ;; c) c=$OPTARG ;; *) exit 2 ;; esac; done
shift $((OPTIND - 1))
[[ $# -gt 0 ]] || { sed -n '2,17p' "$0" >&2; exit 2; }
for tool in valgrind callgrind_control nginx oha curl; do
  command -v $tool >/dev/null || { echo "instructions-per-request: $tool is missing" >&2; exit 1; }
done
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/instructions-per-request.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill -- -"$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

up=$(free_port)
sed -e "s|@RUN@|$work|g; s|@UPSTREAM_PORT@|$up|g" "$here/nginx/upstream.conf.in" > "$work/upstream.conf"
setsid nginx -g "daemon off;" -c "$work/upstream.conf" -p "$work" 2>"$work/upstream.log" & pids+=($!)

for spec in "$@"; do
  name=${spec%%=*} cmd=${spec#*=}
  port=$(free_port) dir=$work/$name
  mkdir -p "$dir"
  # shellcheck disable=SC2086 # CMD is a command line
  LISTEN_ADDR=127.0.0.1:$port UPSTREAM_ADDR=127.0.0.1:$up WORK_DIR=$dir ACCESS_LOG=${ACCESS_LOG:-false} \
    setsid valgrind --tool=callgrind --trace-children=yes --trace-children-skip='*/cargo,*/rustc,*/rustup' --callgrind-out-file="$dir/callgrind.%p" \
    $cmd >"$dir/out.log" 2>&1 & pid=$!; pids+=("$pid")
  for _ in $(seq 1200); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.25; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/" || { echo "$name did not answer; see $dir/out.log" >&2; exit 1; }
  oha --no-tui -n 3000 -c "$c" "http://127.0.0.1:$port/" >/dev/null
  # By pid (the command execs into the server, which keeps it): without one,
  # callgrind_control zeroes and dumps every callgrind process on the machine,
  # and waits forever on one that exits meanwhile.
  callgrind_control -z "$pid" >/dev/null 2>&1
  oha --no-tui -n "$n" -c "$c" "http://127.0.0.1:$port/" >"$dir/oha.txt"
  callgrind_control -d "$pid" >/dev/null 2>&1
  grep -q "\[200\] $n responses" "$dir/oha.txt" || { echo "$name: not all $n answered 200 (see $dir/oha.txt)" >&2; exit 1; }
  # The count is dumped: no graceful shutdown to wait for.
  kill -KILL -- -"$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  # The dump (".1") of the process that served; a script in front of it dumped nothing.
  total=$(cat "$dir"/callgrind.*.1 | awk '/^summary:/ {s += $2} END {print s}')
  printf '%12s: %8.0f instructions/request\n' "$name" "$(echo "$total / $n" | bc -l)"
done
