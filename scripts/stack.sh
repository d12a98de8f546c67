#!/usr/bin/env bash
# The local Plan B stack: the production path with AWS swapped for moto's server.
#
#   client ──▶ planb-proxy ──▶ planb-backend          (ALB1 and ALB2 are not here:
#                 │ SSM             │ JWKS                 the client sends the
#                 └──── moto's server ┘                    x-amzn-oidc-* header ALB1 adds)
#
# Usage: scripts/stack.sh demo|up|down|status|loadtest|stop-backend|start-backend
#   demo           up, show a 200, a 401 without a token, a 401 with a tampered one,
#                  a short oha run through the proxy, then down (also on Ctrl-C or failure)
#   up             start moto, seed Cognito and SSM, start the backend and the proxy; leave them running
#   down           stop everything `up` started
#   status         what is running, where the logs are
#   loadtest       oha through the proxy against a running stack (CONNECTIONS, DURATION)
#   stop-backend / start-backend   take the backend away and bring it back (the proxy is not touched)
#
# Settings (environment): PLANB_RUN (state and logs, default .run), PLANB_PROFILE
# (release|debug, default release), PROXY_PORT (8080), PROXY_ADMIN_PORT (9100),
# BACKEND_PORT (8081), MOTO_PORT (5055), AWS_REGION (ap-northeast-1),
# CONNECTIONS (50), DURATION (10s). Anything else in the environment reaches the
# backend as ECS would pass it (ALB_ARN, TOKEN_CACHE_SIZE, RUST_LOG, ...).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${PLANB_RUN:-$ROOT/.run}
PROFILE=${PLANB_PROFILE:-release}
BIN=$ROOT/target/$PROFILE
VENV=${PLANB_VENV:-$ROOT/.venv}
PROXY_PORT=${PROXY_PORT:-8080}
PROXY_ADMIN_PORT=${PROXY_ADMIN_PORT:-9100}
BACKEND_PORT=${BACKEND_PORT:-8081}
MOTO_PORT=${MOTO_PORT:-5055}
REGION=${AWS_REGION:-ap-northeast-1}
CONNECTIONS=${CONNECTIONS:-50}
DURATION=${DURATION:-10s}
SSM_PARAMETER=/planb/alb2/dns-name
MOTO=http://127.0.0.1:$MOTO_PORT
PROXY=http://127.0.0.1:$PROXY_PORT
PROXY_ADMIN=http://127.0.0.1:$PROXY_ADMIN_PORT
BACKEND=http://127.0.0.1:$BACKEND_PORT
export PROXY PROXY_ADMIN BACKEND MOTO

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'stack: %s\n' "$*" >&2; exit 1; }

# --- prerequisites --------------------------------------------------------

require() { # tool, how to get it
  command -v "$1" >/dev/null || die "missing prerequisite '$1': $2"
}

check_prerequisites() {
  require cargo "install Rust with rustup (https://rustup.rs)"
  require python3 "apt-get install -y python3 python3-venv"
  python3 -c 'import venv, ensurepip' 2>/dev/null || die "missing prerequisite 'python3 venv': apt-get install -y python3-venv"
  require curl "apt-get install -y curl"
  require cmake "apt-get install -y cmake   (pingora builds zlib-ng with it)"
  require make "apt-get install -y make"
}

ensure_oha() {
  command -v oha >/dev/null && return
  [ -x "$HOME/.cargo/bin/oha" ] && { PATH=$HOME/.cargo/bin:$PATH; return; }
  say "oha is missing: installing it with 'cargo install --locked oha' (takes a few minutes, once)"
  cargo install --locked oha
  PATH=$HOME/.cargo/bin:$PATH
}

build() {
  make -C "$ROOT" --no-print-directory venv
  if [ "$PROFILE" = release ]; then
    say "building release binaries (the first build takes several minutes)"
    make -C "$ROOT" --no-print-directory release
  else
    (cd "$ROOT" && cargo build --workspace --bins)
  fi
}

# --- processes ------------------------------------------------------------

# start NAME CMD...: runs CMD in its own session, logging to $RUN/NAME.log.
start() {
  local name=$1; shift
  setsid "$@" >"$RUN/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# stop NAME: SIGTERM to its process group, SIGKILL after 15 s.
stop() {
  local name=$1 pid
  [ -f "$RUN/$name.pid" ] || return 0
  pid=$(cat "$RUN/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

# wait_http NAME URL: until URL answers 200; a component that dies first is
# reported with the end of its log (a port in use is said there, by it).
wait_http() {
  local name=$1 url=$2
  for _ in $(seq 600); do
    if ! running "$name"; then
      printf 'stack: %s exited before it was ready; the end of %s:\n' "$name" "$RUN/$name.log" >&2
      tail -n 15 "$RUN/$name.log" >&2
      return 1
    fi
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)" = 200 ] && return 0
    sleep 0.1
  done
  die "$name did not answer 200 on $url within 60 s (log: $RUN/$name.log)"
}

# --- the stack ------------------------------------------------------------

seed() {
  say "seeding moto: a Cognito pool, app client, users alice (group admins) and bob; SSM $SSM_PARAMETER"
  "$VENV/bin/python" "$ROOT/testkit/moto_seed.py" cognito --endpoint "$MOTO" --region "$REGION" \
    --user alice --group admins >"$RUN/alice.json"
  "$VENV/bin/python" "$ROOT/testkit/moto_seed.py" cognito --endpoint "$MOTO" --region "$REGION" \
    --user bob --pool-id "$(field alice pool_id)" --client-id "$(field alice client_id)" >"$RUN/bob.json"
  # "ALB2" here is the backend itself: the parameter holds its host name, the port is the proxy's config.
  "$VENV/bin/python" "$ROOT/testkit/moto_seed.py" ssm-put --endpoint "$MOTO" --region "$REGION" \
    --name "$SSM_PARAMETER" --value 127.0.0.1 >/dev/null
}

# field USER KEY: one value from what seeding printed for USER.
field() { "$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$RUN/$1.json" "$2"; }

start_backend() {
  say "starting planb-backend on 127.0.0.1:$BACKEND_PORT (log: $RUN/backend.log)"
  COGNITO_USER_POOL_ID=$(field alice pool_id) COGNITO_REGION=$REGION \
    COGNITO_APP_CLIENT_ID=$(field alice client_id) COGNITO_JWKS_URL=$(field alice jwks_url) \
    LISTEN_ADDR=127.0.0.1:$BACKEND_PORT start backend "$BIN/planb-backend"
  wait_http backend "http://127.0.0.1:$BACKEND_PORT/ready"
}

write_proxy_config() {
  # The production config with only the addresses changed: the SSM parameter is still the source.
  sed -e "s|^threads:.*|threads: 2|" \
      -e "s|^pid_file:.*|pid_file: $RUN/proxy.pid.pingora|" \
      -e "s|^upgrade_sock:.*|upgrade_sock: $RUN/proxy-upgrade.sock|" \
      -e "s|^grace_period_seconds:.*|grace_period_seconds: 1|" \
      -e "s|^graceful_shutdown_timeout_seconds:.*|graceful_shutdown_timeout_seconds: 2|" \
      -e "s|^\(  listen:\).*|\1 \"127.0.0.1:$PROXY_PORT\"|" \
      -e "s|^\(  admin_listen:\).*|\1 \"127.0.0.1:$PROXY_ADMIN_PORT\"|" \
      -e "s|^\(    ssm_parameter:\).*|\1 $SSM_PARAMETER|" \
      -e "s|^\(    port:\).*|\1 $BACKEND_PORT|" \
      -e "s|^\(    dns_refresh_secs:\).*|\1 2|" \
      "$ROOT/systemd/proxy.yaml" >"$RUN/proxy.yaml"
}

start_proxy() {
  write_proxy_config
  say "starting planb-proxy on 127.0.0.1:$PROXY_PORT, upstream from SSM $SSM_PARAMETER (log: $RUN/proxy.log)"
  AWS_ENDPOINT_URL_SSM=$MOTO AWS_REGION=$REGION AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    start proxy "$BIN/planb-proxy" -c "$RUN/proxy.yaml"
  wait_http proxy "http://127.0.0.1:$PROXY_ADMIN_PORT/healthz"
}

up() {
  check_prerequisites
  build
  if running moto || running backend || running proxy; then
    die "a stack is already running from $RUN: 'make down' first"
  fi
  mkdir -p "$RUN"
  say "starting moto's server on 127.0.0.1:$MOTO_PORT (log: $RUN/moto.log)"
  start moto "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
  wait_http moto "$MOTO/moto-api/"
  seed
  start_backend
  start_proxy
  write_summary
}

write_summary() {
  "$VENV/bin/python" - "$RUN" <<'EOF' >"$RUN/stack.json"
import json, os, sys
run = sys.argv[1]
alice, bob = (json.load(open(f"{run}/{u}.json")) for u in ("alice", "bob"))
print(json.dumps({"proxy": os.environ["PROXY"], "proxy_admin": os.environ["PROXY_ADMIN"],
                  "backend": os.environ["BACKEND"], "moto": os.environ["MOTO"],
                  "alice": alice, "bob": bob}, indent=1))
EOF
}
down() {
  for name in proxy backend moto; do stop "$name"; done
}

# --- showing it -----------------------------------------------------------

# request TITLE [SHOWN-HEADER REAL-HEADER]: GET /api/me through the proxy, its
# status and body; the command is printed with SHOWN-HEADER (no token on screen).
request() {
  printf '\n\033[1m%s\033[0m\n$ curl%s %s/api/me\n' "$1" "${2:+ -H \"$2\"}" "$PROXY"
  curl -sS -w '\n-> HTTP %{http_code}\n' ${3:+-H "$3"} "$PROXY/api/me"
}

# tampered: the token with one signature character changed.
tampered() {
  local t=$1 last=${1: -1}
  [ "$last" = A ] && echo "${t%?}B" || echo "${t%?}A"
}

loadtest() {
  ensure_oha
  running proxy || die "no stack is running: 'make up' first"
  local token; token=$(field alice access_token)
  say "oha: $CONNECTIONS connections for $DURATION through the proxy, GET /api/me with alice's token"
  oha --no-tui -c "$CONNECTIONS" -z "$DURATION" -H "x-amzn-oidc-accesstoken: $token" "$PROXY/api/me"
}

demo() {
  ensure_oha
  trap 'status=$?; down; exit $status' EXIT
  trap 'exit 130' INT TERM
  up
  local token; token=$(field alice access_token)
  request "A real Cognito access token (from moto's AdminInitiateAuth), through the proxy:" \
    "x-amzn-oidc-accesstoken: <alice's token>" "x-amzn-oidc-accesstoken: $token"
  request "No token:"
  request "A tampered token (one signature character changed):" \
    "x-amzn-oidc-accesstoken: <tampered>" "x-amzn-oidc-accesstoken: $(tampered "$token")"
  echo
  loadtest
  echo
  say "done; stopping the stack. Logs: $RUN/{moto,backend,proxy}.log"
}

status() {
  for name in moto backend proxy; do
    if running "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"), log $RUN/$name.log)"
    else echo "$name: stopped"; fi
  done
}

print_try() {
  cat <<EOF

The stack is up (state and logs in $RUN; 'make down' stops it).
  token:   TOKEN=\$(python3 -c 'import json;print(json.load(open("$RUN/alice.json"))["access_token"])')
  curl:    curl -H "x-amzn-oidc-accesstoken: \$TOKEN" $PROXY/api/me
  admin:   curl -H "x-amzn-oidc-accesstoken: \$TOKEN" $PROXY/api/admin
  metrics: curl $PROXY_ADMIN/metrics   and   curl $BACKEND/metrics
  load:    make loadtest CONNECTIONS=50 DURATION=10s
           oha -c 50 -z 10s -H "x-amzn-oidc-accesstoken: \$TOKEN" $PROXY/api/me
EOF
}

case "${1:-}" in
  demo) demo ;;
  up) up; print_try ;;
  down) down; echo "stack stopped (logs stay in $RUN)" ;;
  status) status ;;
  loadtest) loadtest ;;
  stop-backend) stop backend ;;
  start-backend) start_backend ;;
  *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
