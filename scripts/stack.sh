#!/usr/bin/env bash
# The local Plan B stack: the production path with AWS swapped for moto's server.
#
#   client ──▶ planb-proxy ──▶ planb-backend          (ALB1 and ALB2 are not here:
#                 │ SSM             │ JWKS, DynamoDB       the client sends the
#                 └──── moto's server ┘                    x-amzn-oidc-* header ALB1 adds)
#
# Usage: scripts/stack.sh demo|up|down|status|loadtest|bench-notes|stop-backend|start-backend
#   demo           up, show a 200, a 401 without a token, a 401 with a tampered one,
#                  alice writing and reading a note and bob getting 404 for it,
#                  a short oha run through the proxy, then down (also on Ctrl-C or failure)
#   up             start moto, seed Cognito, SSM and the notes table, start the backend
#                  and the proxy; leave them running
#   down           stop everything `up` started
#   status         what is running, where the logs are
#   loadtest       oha through the proxy against a running stack (CONNECTIONS, DURATION)
#   bench-notes    up (own ports), oha on GET of one note and on /api/me through the proxy, side by side; down
#   stop-backend / start-backend   take the backend away and bring it back (the proxy is not touched)
#
# Settings (environment): PLANB_RUN (state and logs, default .run), PLANB_PROFILE
# (release|debug, default release), PROXY_PORT (8080), PROXY_ADMIN_PORT (9100),
# BACKEND_PORT (8081), MOTO_PORT (5055), AWS_REGION (ap-northeast-1),
# CONNECTIONS (50), DURATION (10s), NOTES_TABLE (planb-notes). Anything else in the
# environment reaches the backend as ECS would pass it (ALB_ARN, TOKEN_CACHE_SIZE, RUST_LOG, ...).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${PLANB_RUN:-$ROOT/.run}
if [ "${1:-}" = bench-notes ]; then
  # bench-notes brings up its own stack: its own state and free ports, unless given,
  # so it never meets a stack that `make up` left running.
  RUN=${PLANB_RUN:-$ROOT/.run-bench-notes}
  free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  PROXY_PORT=${PROXY_PORT:-$(free_port)} PROXY_ADMIN_PORT=${PROXY_ADMIN_PORT:-$(free_port)}
  BACKEND_PORT=${BACKEND_PORT:-$(free_port)} MOTO_PORT=${MOTO_PORT:-$(free_port)}
fi
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
NOTES_TABLE=${NOTES_TABLE:-planb-notes}
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
  say "creating the DynamoDB table $NOTES_TABLE (key owner S, note_id S) in moto"
  "$VENV/bin/python" "$ROOT/testkit/moto_seed.py" notes-table --endpoint "$MOTO" --region "$REGION" \
    --name "$NOTES_TABLE" >/dev/null
  # The cursor key, as infra passes a generated secret: one per stack, kept for restarts.
  "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$RUN/cursor.key"
}

# field USER KEY: one value from what seeding printed for USER.
field() { "$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$RUN/$1.json" "$2"; }

start_backend() {
  say "starting planb-backend on 127.0.0.1:$BACKEND_PORT (log: $RUN/backend.log)"
  COGNITO_USER_POOL_ID=$(field alice pool_id) COGNITO_REGION=$REGION \
    COGNITO_APP_CLIENT_ID=$(field alice client_id) COGNITO_JWKS_URL=$(field alice jwks_url) \
    NOTES_TABLE=$NOTES_TABLE NOTES_CURSOR_KEY=$(cat "$RUN/cursor.key") \
    AWS_ENDPOINT_URL_DYNAMODB=$MOTO AWS_REGION=$REGION AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
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

# note TITLE METHOD USER ID [TEXT]: one notes request through the proxy as USER,
# printed as the curl command a reader can run (the token as $TOKEN).
note() {
  local title=$1 method=$2 user=$3 id=$4 text=${5:-} token
  token=$(field "$user" access_token)
  printf '\n\033[1m%s\033[0m\n$ curl -X %s -H "x-amzn-oidc-accesstoken: <%s'"'"'s token>"%s %s/api/notes/%s\n' \
    "$title" "$method" "$user" "${text:+ -d '{\"text\": \"$text\"\}'}" "$PROXY" "$id"
  curl -sS -w '\n-> HTTP %{http_code}\n' -X "$method" -H "x-amzn-oidc-accesstoken: $token" \
    ${text:+-H 'content-type: application/json' -d "{\"text\": \"$text\"}"} "$PROXY/api/notes/$id"
}

# note TITLE METHOD USER ID [TEXT]: one notes request through the proxy as USER,
# shown as the curl command (with a placeholder for the token), then its answer.
note() {
  local title=$1 method=$2 user=$3 id=$4 text=${5:-}
  local shown="curl -X $method -H \"x-amzn-oidc-accesstoken: <$user's token>\""
  local args=(-X "$method" -H "x-amzn-oidc-accesstoken: $(field "$user" access_token)")
  if [ -n "$text" ]; then
    shown+=" -d '{\"text\": \"$text\"}'"
    args+=(-H 'content-type: application/json' -d "{\"text\": \"$text\"}")
  fi
  printf '\n\033[1m%s\033[0m\n$ %s %s/api/notes/%s\n' "$title" "$shown" "$PROXY" "$id"
  curl -sS -w '\n-> HTTP %{http_code}\n' "${args[@]}" "$PROXY/api/notes/$id"
}

# oha_summary URL TOKEN: one oha run; prints "req/s p99-ms success-rate {status: count}".
oha_summary() {
  oha --no-tui --output-format json -c "$CONNECTIONS" -z "$DURATION" \
    -H "x-amzn-oidc-accesstoken: $2" "$1" | "$VENV/bin/python" -c '
import json, sys
r = json.load(sys.stdin)
s, p99 = r["summary"], r["latencyPercentiles"]["p99"] * 1000
codes = json.dumps(r.get("statusCodeDistribution", {}), separators=(",", ":"))
rps, ok = s["requestsPerSec"], s["successRate"]
print(f"{rps:.0f} {p99:.2f} {ok:.4f} {codes}")'
}

# bench-notes: GET of one note beside GET /api/me on the same stack, same oha settings.
bench_notes() {
  ensure_oha
  trap 'status=$?; down; exit $status' EXIT
  trap 'exit 130' INT TERM
  up
  local token me notes
  token=$(field alice access_token)
  curl -sS -o /dev/null -X PUT -H "x-amzn-oidc-accesstoken: $token" -H 'content-type: application/json' \
    -d '{"text": "the note every request reads"}' "$PROXY/api/notes/bench"
  say "oha: $CONNECTIONS connections for $DURATION per route, through the proxy, alice's token"
  me=$(oha_summary "$PROXY/api/me" "$token")
  notes=$(oha_summary "$PROXY/api/notes/bench" "$token")
  printf '\n%-22s %9s %9s %8s  %s\n' route req/s p99-ms success statuses
  # shellcheck disable=SC2086 # the summaries are four words each
  printf '%-22s %9s %9s %8s  %s\n' "GET /api/me" $me "GET /api/notes/bench" $notes
  cat <<EOF

/api/me never leaves the backend (a verified-token cache hit). A note adds one
DynamoDB GetItem, answered here by moto's server: one Python process, and the
limit of this figure (not the backend, not the proxy). Real DynamoDB answers a
GetItem in single-digit milliseconds and scales out; this measures the path.
EOF
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
  note "alice writes a note (DynamoDB, owner = her verified sub):" PUT alice groceries "milk, eggs"
  note "alice reads it back:" GET alice groceries
  note "bob asks for the same id: not his, so it does not exist for him:" GET bob groceries
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
  notes:   curl -X PUT -H "x-amzn-oidc-accesstoken: \$TOKEN" -d '{"text": "milk"}' $PROXY/api/notes/groceries
           curl -H "x-amzn-oidc-accesstoken: \$TOKEN" $PROXY/api/notes/groceries
           curl -H "x-amzn-oidc-accesstoken: \$TOKEN" "$PROXY/api/notes?limit=10"
           curl -X DELETE -H "x-amzn-oidc-accesstoken: \$TOKEN" $PROXY/api/notes/groceries
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
  bench-notes) bench_notes ;;
  stop-backend) stop backend ;;
  start-backend) start_backend ;;
  *) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
