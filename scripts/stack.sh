#!/usr/bin/env bash
# The local Plan B stack: the production path with AWS swapped for moto's server.
#
#   browser ──▶ ALB1 stand-in ──▶ planb-proxy ──▶ planb-backend    (ALB2 is not here:
#                 │ login, cookie,      │ SSM            │ JWKS, ALB key, DynamoDB
#                 │ x-amzn-oidc-*       └─ moto's server ┘
#                 └─ Cognito domain stand-in (moto's pool), ALB public key endpoint
#
# testkit/alb1 is a test stand-in for ALB1 (README there): it signs users in
# against moto's Cognito and adds the headers ALB1 adds, so the backend runs
# with ALB_ARN set and verifies x-amzn-oidc-data as in production.
#
# Usage: scripts/stack.sh demo|up|down|status|loadtest|bench-notes|stop-backend|start-backend
#   demo           up, sign alice in through ALB1's form, show /api/me (200 with her
#                  session, 401 without), the login redirect, a tampered bearer token
#                  refused, alice writing and reading a note and bob getting 404 for it,
#                  a machine client's token, a short oha run on the proxy (as ALB1 calls
#                  it), then down (also on Ctrl-C or failure)
#   up             start moto, seed Cognito, SSM and the notes table, start the backend (BACKEND),
#                  the proxy and the ALB1 stand-in; leave them running
#   down           stop everything `up` started
#   status         what is running, where the logs are
#   loadtest       oha through the proxy against a running stack (CONNECTIONS, DURATION)
#   bench-notes    up (own ports), oha on GET of one note and on /api/me through the proxy, side by side; down
#   stop-backend / start-backend   take the backend away and bring it back (the proxy is not touched)
#
# Settings (environment): BACKEND (the service behind the proxy: planb-backend, the default, or
# team-service, the example a team copies: examples/team-service), PLANB_RUN (state and logs, default
# .run), PLANB_PROFILE (release|debug, default release), PROXY_PORT (8080), PROXY_ADMIN_PORT (9100),
# BACKEND_PORT (8081), MOTO_PORT (5055), ALB_PORT (8000: ALB1's listener, the URL to open),
# COGNITO_PORT (8001: the Cognito domain), ALB_KEYS_PORT (8002: ALB's public keys), AWS_REGION (ap-northeast-1),
# CONNECTIONS (50), DURATION (10s), NOTES_TABLE (planb-notes), ALB1_SESSION_TIMEOUT (the stand-in's
# session in seconds; default infra/alb1.json's), CORS_ALLOWED_ORIGINS (default http://localhost:3000,
# a sample origin a page served on that port may call the API from), TRACES (1: the backend sends
# its spans to the testkit's OTLP receiver, a test double of the ADOT collector, on OTLP_PORT (4318);
# they land in $RUN/spans.jsonl, one JSON line each). Anything else in the
# environment reaches the backend as ECS would pass it (TOKEN_CACHE_SIZE, RUST_LOG, ...); ALB_ARN and
# ALB_PUBLIC_KEY_URL default to the stand-in's (set, they replace them for the backend).
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
  ALB_PORT=${ALB_PORT:-$(free_port)} COGNITO_PORT=${COGNITO_PORT:-$(free_port)}
  ALB_KEYS_PORT=${ALB_KEYS_PORT:-$(free_port)}
fi
SERVICE=${BACKEND:-planb-backend}
case $SERVICE in
  planb-backend|team-service) ;;
  *) printf 'stack: BACKEND must be planb-backend or team-service, not %s\n' "$SERVICE" >&2; exit 2 ;;
esac
CORS_ALLOWED_ORIGINS=${CORS_ALLOWED_ORIGINS-http://localhost:3000}
PROFILE=${PLANB_PROFILE:-release}
BIN=$ROOT/target/$PROFILE
VENV=${PLANB_VENV:-$ROOT/.venv}
PROXY_PORT=${PROXY_PORT:-8080}
PROXY_ADMIN_PORT=${PROXY_ADMIN_PORT:-9100}
BACKEND_PORT=${BACKEND_PORT:-8081}
MOTO_PORT=${MOTO_PORT:-5055}
ALB_PORT=${ALB_PORT:-8000}
COGNITO_PORT=${COGNITO_PORT:-8001}
ALB_KEYS_PORT=${ALB_KEYS_PORT:-8002}
OTLP_PORT=${OTLP_PORT:-4318}
REGION=${AWS_REGION:-ap-northeast-1}
CONNECTIONS=${CONNECTIONS:-50}
DURATION=${DURATION:-10s}
SSM_PARAMETER=/planb/alb2/dns-name
NOTES_TABLE=${NOTES_TABLE:-planb-notes}
MOTO=http://127.0.0.1:$MOTO_PORT
PROXY=http://127.0.0.1:$PROXY_PORT
PROXY_ADMIN=http://127.0.0.1:$PROXY_ADMIN_PORT
BACKEND_URL=http://127.0.0.1:$BACKEND_PORT
ALB=http://127.0.0.1:$ALB_PORT
# Another host name than ALB1's, as a real Cognito domain is: its cookie stays its own.
COGNITO_PUBLIC=http://localhost:$COGNITO_PORT
COGNITO=http://127.0.0.1:$COGNITO_PORT
ALB_KEYS=http://127.0.0.1:$ALB_KEYS_PORT
LOCAL_ALB_ARN=arn:aws:elasticloadbalancing:$REGION:000000000000:loadbalancer/app/planb-alb1-standin/0123456789abcdef
ALB_ARN=${ALB_ARN:-$LOCAL_ALB_ARN}
export PROXY PROXY_ADMIN BACKEND_URL MOTO ALB COGNITO_PUBLIC ALB_KEYS ALB_ARN

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
  say "seeding moto: a Cognito pool, ALB1's app client, users alice (group admins) and bob, a machine client; SSM $SSM_PARAMETER"
  "$VENV/bin/python" "$ROOT/testkit/moto_seed.py" cognito --endpoint "$MOTO" --region "$REGION" \
    --user alice --group admins --callback-url "$ALB/oauth2/idpresponse" --logout-url "$ALB/" >"$RUN/alice.json"
  "$VENV/bin/python" "$ROOT/testkit/moto_seed.py" cognito --endpoint "$MOTO" --region "$REGION" \
    --user bob --pool-id "$(field alice pool_id)" --client-id "$(field alice client_id)" >"$RUN/bob.json"
  # team-service's machine routes want planb/write as well; a token can ask for fewer (scope=planb/read).
  local scopes=(--scope read)
  [ "$SERVICE" = team-service ] && scopes+=(--scope write)
  "$VENV/bin/python" "$ROOT/testkit/moto_seed.py" machine-client --endpoint "$MOTO" --region "$REGION" \
    --pool-id "$(field alice pool_id)" "${scopes[@]}" >"$RUN/machine.json"
  # "ALB2" here is the backend itself: the parameter holds its host name, the port is the proxy's config.
  "$VENV/bin/python" "$ROOT/testkit/moto_seed.py" ssm-put --endpoint "$MOTO" --region "$REGION" \
    --name "$SSM_PARAMETER" --value 127.0.0.1 >/dev/null
  if [ "$SERVICE" = planb-backend ]; then
    say "creating the DynamoDB table $NOTES_TABLE (key owner S, note_id S) in moto"
    "$VENV/bin/python" "$ROOT/testkit/moto_seed.py" notes-table --endpoint "$MOTO" --region "$REGION" \
      --name "$NOTES_TABLE" >/dev/null
    # The cursor key, as infra passes a generated secret: one per stack, kept for restarts.
    "$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$RUN/cursor.key"
  fi
  # The stand-in ALB's signing key id (a UUID, as ALB's are); the key itself it makes at start.
  "$VENV/bin/python" -c 'import uuid; print(uuid.uuid4())' >"$RUN/alb1.kid"
  rm -f "$RUN/alb1-key.pem"
}

# field USER KEY: one value from what seeding printed for USER.
field() { "$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$RUN/$1.json" "$2"; }

# alb1 ARGS...: the ALB1 stand-in's command line (testkit/alb1).
alb1() { PYTHONPATH=$ROOT/testkit "$VENV/bin/python" -m alb1 "$@"; }

# TRACES=1: the OTLP receiver (testkit/otlp_receiver.py) the backend sends its spans to.
start_otlp() {
  say "starting the OTLP receiver (a test double of the ADOT collector) on 127.0.0.1:$OTLP_PORT; spans in $RUN/spans.jsonl"
  start otlp "$VENV/bin/python" "$ROOT/testkit/otlp_receiver.py" --listen "127.0.0.1:$OTLP_PORT" --out "$RUN/spans.jsonl"
  echo "http://127.0.0.1:$OTLP_PORT" >"$RUN/otlp.url"
  wait_http otlp "http://127.0.0.1:$OTLP_PORT/"
}

start_backend() {
  say "starting $SERVICE on 127.0.0.1:$BACKEND_PORT, CORS origins: ${CORS_ALLOWED_ORIGINS:-none} (log: $RUN/backend.log)"
  # The receiver `up` started with TRACES=1, as infra points the backend at its collector (batches
  # sent each second here: the spans show while one looks).
  if running otlp; then
    export OTEL_EXPORTER_OTLP_ENDPOINT OTEL_BSP_SCHEDULE_DELAY=${OTEL_BSP_SCHEDULE_DELAY:-1000}
    OTEL_EXPORTER_OTLP_ENDPOINT=$(cat "$RUN/otlp.url")
  fi
  # What every service behind ALB1 gets, as infra passes it. Allowed clients: ALB1's app client and
  # the machine client.
  local common=(COGNITO_USER_POOL_ID="$(field alice pool_id)" COGNITO_REGION="$REGION"
    COGNITO_APP_CLIENT_ID="$(field alice client_id),$(field machine client_id)"
    COGNITO_JWKS_URL="$(field alice jwks_url)"
    ALB_ARN="$ALB_ARN" ALB_PUBLIC_KEY_URL="${ALB_PUBLIC_KEY_URL:-$ALB_KEYS}"
    CORS_ALLOWED_ORIGINS="$CORS_ALLOWED_ORIGINS" LISTEN_ADDR="127.0.0.1:$BACKEND_PORT")
  if [ "$SERVICE" = team-service ]; then
    start backend env "${common[@]}" "$BIN/team-service"
  else
    # The sign-out URL is the one registered on the app client, character for character (Cognito
    # compares exactly), with the trailing slash infra's URL has.
    start backend env "${common[@]}" \
      COGNITO_DOMAIN="$COGNITO_PUBLIC" LOGOUT_REDIRECT_URL="$ALB/" \
      NOTES_TABLE="$NOTES_TABLE" NOTES_CURSOR_KEY="$(cat "$RUN/cursor.key")" \
      AWS_ENDPOINT_URL_DYNAMODB="$MOTO" AWS_REGION="$REGION" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
      "$BIN/planb-backend"
  fi
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
      -e "s|^\(    ssm_allowed_hosts:\).*|\1 [\"127.0.0.1\"]|" \
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

start_alb1() {
  say "starting the ALB1 stand-in on $ALB (Cognito domain $COGNITO_PUBLIC, keys $ALB_KEYS; log: $RUN/alb1.log)"
  # The rules, the session's lifetime and the claims the bearer rule requires come from
  # infra/alb1.json, as infra deploys them; ALB1_SESSION_TIMEOUT (seconds) shortens the session.
  start alb1 env PYTHONPATH="$ROOT/testkit" "$VENV/bin/python" -m alb1 serve \
    --listen "127.0.0.1:$ALB_PORT" --target "$PROXY" \
    --cognito-listen "127.0.0.1:$COGNITO_PORT" --cognito-url "$COGNITO" --cognito-public-url "$COGNITO_PUBLIC" \
    --keys-listen "127.0.0.1:$ALB_KEYS_PORT" --moto "$MOTO" --region "$REGION" \
    --pool-id "$(field alice pool_id)" --client-id "$(field alice client_id)" \
    --client-secret "$(field alice client_secret)" --jwks-url "$(field alice jwks_url)" \
    --alb-arn "$ALB_ARN" --kid "$(cat "$RUN/alb1.kid")" --key-file "$RUN/alb1-key.pem" \
    ${ALB1_SESSION_TIMEOUT:+--session-timeout "$ALB1_SESSION_TIMEOUT"}
  wait_http alb1 "$ALB_KEYS/$(cat "$RUN/alb1.kid")"
  # What ALB1 adds for alice, for load tests that call the proxy directly as ALB1 does.
  alb1 headers --user-json "$RUN/alice.json" --key-file "$RUN/alb1-key.pem" \
    --kid "$(cat "$RUN/alb1.kid")" --alb-arn "$ALB_ARN" >"$RUN/alice.headers"
}

up() {
  check_prerequisites
  build
  if running moto || running backend || running proxy || running alb1 || running otlp; then
    die "a stack is already running from $RUN: 'make down' first"
  fi
  mkdir -p "$RUN"
  say "starting moto's server on 127.0.0.1:$MOTO_PORT (log: $RUN/moto.log)"
  start moto "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
  wait_http moto "$MOTO/moto-api/"
  seed
  echo "$SERVICE" >"$RUN/service"
  rm -f "$RUN/otlp.url"
  [ "${TRACES:-}" != 1 ] || start_otlp
  start_backend
  start_proxy
  start_alb1
  write_summary
}

write_summary() {
  SERVICE=$SERVICE "$VENV/bin/python" - "$RUN" <<'EOF' >"$RUN/stack.json"
import json, os, sys
run = sys.argv[1]
alice, bob, machine = (json.load(open(f"{run}/{u}.json")) for u in ("alice", "bob", "machine"))
print(json.dumps({"proxy": os.environ["PROXY"], "proxy_admin": os.environ["PROXY_ADMIN"],
                  "backend": os.environ["BACKEND_URL"], "service": os.environ["SERVICE"], "moto": os.environ["MOTO"],
                  "alb": os.environ["ALB"], "cognito": os.environ["COGNITO_PUBLIC"],
                  "alb_keys": os.environ["ALB_KEYS"], "alb_arn": os.environ["ALB_ARN"],
                  "alb_kid": open(f"{run}/alb1.kid").read().strip(),
                  "alice": alice, "bob": bob, "machine": machine}, indent=1))
EOF
}
down() {
  for name in alb1 proxy backend otlp moto; do stop "$name"; done
}

# --- showing it -----------------------------------------------------------

# show TITLE SHOWN-COMMAND CURL-ARGS...: the command as a reader would type it
# (no token or cookie on screen), then its status and body.
show() {
  local title=$1 shown=$2; shift 2
  printf '\n\033[1m%s\033[0m\n$ %s\n' "$title" "$shown"
  curl -sS -w '\n-> HTTP %{http_code}\n' "$@"
}

# tampered: the token with one signature character changed.
tampered() {
  local t=$1 last=${1: -1}
  [ "$last" = A ] && echo "${t%?}B" || echo "${t%?}A"
}

# sign_in USER: signs USER in through ALB1's login form (as a browser does);
# keeps the session's Cookie header in $RUN/USER.cookie.
sign_in() {
  alb1 login --alb "$ALB" --user "$1" --password "$(field "$1" password)" >"$RUN/$1.cookie"
}

# note TITLE METHOD USER ID [TEXT]: one notes request through ALB1 with USER's session.
note() {
  local title=$1 method=$2 user=$3 id=$4 text=${5:-}
  local shown="curl -X $method -b \"<$user's session cookie>\""
  local args=(-X "$method" -H "Cookie: $(cat "$RUN/$user.cookie")")
  if [ -n "$text" ]; then
    shown+=" -d '{\"text\": \"$text\"}'"
    args+=(-H 'content-type: application/json' -d "{\"text\": \"$text\"}")
  fi
  show "$title" "$shown $ALB/api/notes/$id" "${args[@]}" "$ALB/api/notes/$id"
}

# oha_headers: oha's -H arguments (NUL-separated) for what ALB1 adds to alice's requests.
oha_headers() {
  local line
  while IFS= read -r line; do printf '%s\0%s\0' -H "$line"; done <"$RUN/alice.headers"
}

# oha_summary URL: one oha run with alice's ALB1 headers; prints "req/s p99-ms success-rate {status: count}".
oha_summary() {
  local headers=(); mapfile -d '' headers < <(oha_headers)
  oha --no-tui --output-format json -c "$CONNECTIONS" -z "$DURATION" \
    "${headers[@]}" "$1" | "$VENV/bin/python" -c '
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
  local me notes headers=()
  mapfile -d '' headers < <(oha_headers)
  curl -sS -o /dev/null -X PUT "${headers[@]}" -H 'content-type: application/json' \
    -d '{"text": "the note every request reads"}' "$PROXY/api/notes/bench"
  say "oha: $CONNECTIONS connections for $DURATION per route, through the proxy, alice's ALB1 headers"
  me=$(oha_summary "$PROXY/api/me")
  notes=$(oha_summary "$PROXY/api/notes/bench")
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
  local headers=(); mapfile -d '' headers < <(oha_headers)
  say "oha: $CONNECTIONS connections for $DURATION on the proxy (as ALB1 calls it), GET /api/me with alice's ALB1 headers"
  oha --no-tui -c "$CONNECTIONS" -z "$DURATION" "${headers[@]}" "$PROXY/api/me"
}

demo() {
  ensure_oha
  trap 'status=$?; down; exit $status' EXIT
  trap 'exit 130' INT TERM
  up
  say "signing alice and bob in through ALB1's login form (the Cognito stand-in checks the password with moto)"
  sign_in alice
  sign_in bob
  show "alice's session (cookie AWSELBAuthSessionCookie-0...): ALB1 adds x-amzn-oidc-*, the backend verifies all three:" \
    "curl -b \"<alice's session cookie>\" $ALB/api/me" -H "Cookie: $(cat "$RUN/alice.cookie")" "$ALB/api/me"
  show "No session, an API path: ALB1 answers 401 itself (onUnauthenticatedRequest: deny):" \
    "curl $ALB/api/me" "$ALB/api/me"
  show "No session, any other path: ALB1 sends the browser to the login:" \
    "curl -o /dev/null -w '%{redirect_url}' $ALB/" -o /dev/null -w '%{redirect_url}' "$ALB/"
  local token; token=$(field alice access_token)
  show "A tampered bearer token (one signature character changed): ALB1's JWT check refuses it:" \
    "curl -H \"Authorization: Bearer <tampered>\" $ALB/api/me" -H "Authorization: Bearer $(tampered "$token")" "$ALB/api/me"
  note "alice writes a note (DynamoDB, owner = her verified sub):" PUT alice groceries "milk, eggs"
  note "alice reads it back:" GET alice groceries
  note "bob asks for the same id: not his, so it does not exist for him:" GET bob groceries
  local machine
  machine=$(alb1 token --cognito-url "$COGNITO" --client-id "$(field machine client_id)" \
    --client-secret "$(field machine client_secret)")
  show "A machine client (client credentials from the Cognito domain) through ALB1's bearer rule:" \
    "curl -H \"Authorization: Bearer <token from POST $COGNITO_PUBLIC/oauth2/token>\" $ALB/api/me" \
    -H "Authorization: Bearer $machine" "$ALB/api/me"
  echo
  loadtest
  echo
  say "done; stopping the stack. Logs: $RUN/{moto,backend,proxy,alb1}.log"
}

status() {
  for name in moto backend proxy alb1 otlp; do
    if running "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"), log $RUN/$name.log)"
    else echo "$name: stopped"; fi
  done
}

# try_session, try_machine: what to try with a session and with a machine's token, per service.
try_session() {
  if [ "$SERVICE" = team-service ]; then cat <<EOF
           curl -H "Cookie: \$COOKIE" -H 'Content-Type: application/json' -d '{"item": "tea", "quantity": 2}' $ALB/api/orders
           curl -H "Cookie: \$COOKIE" $ALB/api/orders/1
           curl -X PATCH -H "Cookie: \$COOKIE" -H 'Content-Type: application/json' -d '{"status": "shipped"}' $ALB/api/orders/1
           curl -H "Cookie: \$COOKIE" -H 'Content-Type: application/json' -d '{"item": "tea"}' $ALB/api/orders   # 422 missing_field
EOF
  else cat <<EOF
           curl -H "Cookie: \$COOKIE" $ALB/api/me
           curl -X PUT -H "Cookie: \$COOKIE" -H 'Content-Type: application/json' -d '{"text": "milk"}' $ALB/api/notes/groceries
           curl -H "Cookie: \$COOKIE" "$ALB/api/notes?limit=10"
EOF
  fi
}

try_machine() {
  if [ "$SERVICE" = team-service ]; then cat <<EOF
           curl -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"item": "crate", "quantity": 1}' $ALB/api/orders
           # a token asked for with -d scope=planb/read lacks planb/write: that POST is 403 missing_scope
EOF
  else cat <<EOF
           curl -H "Authorization: Bearer \$TOKEN" $ALB/api/me
EOF
  fi
}

print_try() {
  local metrics="curl $PROXY_ADMIN/metrics   and   curl $BACKEND_URL/metrics"
  local load="make loadtest CONNECTIONS=50 DURATION=10s   (oha on the proxy with the headers ALB1 adds: $RUN/alice.headers)"
  if [ "$SERVICE" = team-service ]; then
    metrics="curl $PROXY_ADMIN/metrics"
    load="oha -H \"Cookie: \$COOKIE\" $ALB/api/orders/1   (through ALB1 with alice's session)"
  fi
  cat <<EOF

The stack is up with $SERVICE behind the proxy (state and logs in $RUN; 'make down' stops it).
  browser: open $ALB/ and sign in as alice or bob, password $(field alice password)
           (ALB1's login through the Cognito domain stand-in, $COGNITO_PUBLIC)
  CORS:    ${CORS_ALLOWED_ORIGINS:-no origin} may call the API from a browser (CORS_ALLOWED_ORIGINS; empty: same origin only)
  session: COOKIE=\$(PYTHONPATH=$ROOT/testkit $VENV/bin/python -m alb1 login --alb $ALB --user alice --password '$(field alice password)')
$(try_session)
  machine: TOKEN=\$(curl -s -u $(field machine client_id):$(field machine client_secret) -d grant_type=client_credentials $COGNITO/oauth2/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
$(try_machine)
  metrics: $metrics
  load:    $load
EOF
  if running otlp; then
    echo "  traces:  the backend's spans, one JSON line each: tail -f $RUN/spans.jsonl"
  fi
}

# only_backend WHAT: WHAT calls planb-backend's own routes (notes, /api/me).
only_backend() {
  [ "$SERVICE" = planb-backend ] || die "$1 calls planb-backend's own routes, not $SERVICE's ('make up' prints what to try with it)"
}

case "${1:-}" in
  demo) only_backend demo; demo ;;
  up) up; print_try ;;
  down) down; echo "stack stopped (logs stay in $RUN)" ;;
  status) status ;;
  loadtest) only_backend loadtest; loadtest ;;
  bench-notes) only_backend bench-notes; bench_notes ;;
  stop-backend) stop backend ;;
  start-backend) # the service `up` started, unless BACKEND names one
    [ -n "${BACKEND:-}" ] || SERVICE=$(cat "$RUN/service" 2>/dev/null || echo planb-backend)
    start_backend ;;
  *) sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
