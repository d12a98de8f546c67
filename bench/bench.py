#!/usr/bin/env python3
"""planb's benchmarks, side by side, from a clone of the repository.

  bench/bench.py proxy  [options]   planb-proxy beside tuned Nginx and HAProxy and a bare
                                    Pingora proxy (the floor), for each worker count and
                                    access-log setting asked for
  bench/bench.py verify [options]   planb-backend (token cache on and off) beside
                                    aws-jwt-verify on Node, the seed's FastAPI app and
                                    a bare axum server (the floor), GET /api/me with a
                                    real Cognito access token minted by moto's server,
                                    for each worker count asked for

Every target of one setting runs at once and oha loads them in alternating rounds
(each round in a rotated order), so what the machine does during a run falls on all of
them alike: the ratios, medians of per-round ratios, are the figures to read; req/s on
a shared machine moves between runs. One JSON result per run goes to bench/results/
(or --out) with the date, the machine, the command and every round.

What it needs it installs the way `make demo` installs oha: oha with
`cargo install --locked oha`, nginx and haproxy with apt-get (as root or through
`sudo -n`), aws-jwt-verify with `npm ci` from bench/aws-jwt-verify/package-lock.json,
the seed's app in its own venv from bench/seed-fastapi/requirements.txt, the floors
with cargo (bench/bare-pingora, bench/bare-axum, each with the repository's
Cargo.lock). planb's release binaries and the Python venv (moto) come from
`make release venv`, which the Makefile's bench targets run first.
"""
import argparse, datetime, json, os, platform, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time
import urllib.error, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
VENV = os.path.join(ROOT, ".venv")
STARTED = []  # the processes this run started, each its own session; stopped by process group at exit
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])  # where Debian puts nginx and haproxy


def say(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die(msg):
    sys.exit(f"bench: {msg}")


# --- tools --------------------------------------------------------------------------------

def which(tool):
    return shutil.which(tool, path=SBIN) or (
        os.path.join(os.path.expanduser("~/.cargo/bin"), tool)
        if os.access(os.path.expanduser(f"~/.cargo/bin/{tool}"), os.X_OK) else None)


def apt_install(packages):
    """apt-get install, as root or through passwordless sudo; a clear error otherwise."""
    if os.geteuid() == 0:
        prefix = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        die(f"{' '.join(packages)} missing and no root to install them: apt-get install -y {' '.join(packages)}")
    say(f"installing {' '.join(packages)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(prefix + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(prefix + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], check=True, env=env)


def ensure_oha():
    if not which("oha"):
        say("oha is missing: installing it with 'cargo install --locked oha' (takes a few minutes, once)")
        subprocess.run(["cargo", "install", "--locked", "oha"], check=True)
    return which("oha")


def ensure_apt_tools(tools):
    """tools: {binary: Debian package}; installs the missing ones, returns {binary: path}."""
    missing = sorted({pkg for tool, pkg in tools.items() if not which(tool)})
    if missing:
        apt_install(missing)
    paths = {tool: which(tool) for tool in tools}
    if not all(paths.values()):
        die("still missing after apt-get: " + ", ".join(t for t, p in paths.items() if not p))
    return paths


def ensure_aws_jwt_verify():
    """npm ci in bench/aws-jwt-verify when its node_modules is absent or older than the lock file."""
    d = os.path.join(HERE, "aws-jwt-verify")
    stamp = os.path.join(d, "node_modules", ".package-lock.json")
    if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(os.path.join(d, "package-lock.json")):
        say("installing aws-jwt-verify with npm ci (bench/aws-jwt-verify/package-lock.json)")
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=d, check=True)
    return d


def ensure_seed():
    """A venv for the seed's FastAPI app in bench/seed-fastapi/.venv, made again when the
    requirements are newer; returns (the app's directory, its uvicorn)."""
    d = os.path.join(HERE, "seed-fastapi")
    venv, reqs = os.path.join(d, ".venv"), os.path.join(d, "requirements.txt")
    stamp = os.path.join(venv, ".ready")
    if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(reqs):
        say("installing the seed's FastAPI app's packages in bench/seed-fastapi/.venv (pip, once)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check", "-r", reqs],
                       check=True)
        open(stamp, "w").close()
    return d, os.path.join(venv, "bin", "uvicorn")


def build_floor(name):
    """A floor (bench/bare-pingora, bench/bare-axum), built with the repository's Cargo.lock so
    it runs the same Pingora, axum, hyper and tokio as planb's binaries; returns its path."""
    d = os.path.join(HERE, name)
    shutil.copy(os.path.join(ROOT, "Cargo.lock"), os.path.join(d, "Cargo.lock"))
    say(f"building bench/{name} (release)")
    subprocess.run(["cargo", "build", "-q", "--release", "--manifest-path", os.path.join(d, "Cargo.toml")],
                   check=True, env={**os.environ, "CARGO_TARGET_DIR": TARGET_DIR})
    return os.path.join(TARGET_DIR, "release", name)


def release_binary(name):
    path = os.path.join(TARGET_DIR, "release", name)
    if not os.access(path, os.X_OK):
        die(f"{path} is missing: make release")
    return path


def version(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


# --- processes ----------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, log, env=None, cwd=None):
    p = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                         cwd=cwd, start_new_session=True)
    STARTED.append(p)
    return p


def stop_all(since=0):
    """Stops the processes started since the `since`-th one (all by default), by process group."""
    procs = STARTED[since:]
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    del STARTED[since:]


def wait_port(port, what, proc, log, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            tail = open(log, errors="replace").read()[-1500:]
            die(f"{what} exited with {proc.returncode} before listening on 127.0.0.1:{port}; its log ({log}):\n{tail}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    die(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s; see {log}")


def wait_ready(url, what, log, timeout=30):
    end = time.time() + timeout
    while http_get(url)[0] != 200:
        if time.time() > end:
            die(f"{what}: {url} did not answer 200 within {timeout}s; see {log}")
        time.sleep(0.05)


def http_get(url, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def session_usage(sid):
    """Every process in session `sid` (a target, its supervisor and its workers): their
    resident memory in KiB, their number and their threads'."""
    rss = procs = threads = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
            if int(stat[stat.rindex(")") + 2:].split()[3]) != sid:
                continue
            status = {l.split(":")[0]: l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith(("VmRSS:", "Threads:"))}
            rss, procs, threads = rss + int(status.get("VmRSS", 0)), procs + 1, threads + int(status["Threads"])
        except (OSError, KeyError, ValueError, IndexError):
            pass
    return {"rss_kib": rss, "processes": procs, "threads": threads}


# --- load ---------------------------------------------------------------------------------

def oha(args, url, secs, headers=()):
    cmd = [args.oha, "--no-tui", "--output-format", "json", "-c", str(args.connections), "-z", f"{secs}s"]
    for h in headers:
        cmd += ["-H", h]
    r = json.loads(subprocess.run(cmd + [url], capture_output=True, check=True, text=True).stdout)
    codes = r.get("statusCodeDistribution", {})
    # oha cuts the requests in flight when the time is up: those are not the server's errors.
    errors = {k: v for k, v in r.get("errorDistribution", {}).items() if "deadline" not in k and "aborted" not in k}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    return {"rps": round(r["summary"]["requestsPerSec"], 1), "p50_ms": round(r["latencyPercentiles"]["p50"] * 1e3, 3),
            "p99_ms": round(r["latencyPercentiles"]["p99"] * 1e3, 3),
            "not_2xx": sum(codes.values()) - ok + sum(errors.values())}


def alternate(args, targets, headers=()):
    """targets: {name: (url, session id)}. Warm-up, then args.rounds rounds over all targets,
    each round starting one target further along; returns {name: [round results]}."""
    names = list(targets)
    for n in names:
        oha(args, targets[n][0], 2, headers)
    res = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            res[n].append(oha(args, targets[n][0], args.duration, headers))
        say(f"  round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {res[n][-1]['rps']:.0f}" for n in names))
    return res


def summarize(rounds, targets):
    out = {}
    for n, rs in rounds.items():
        out[n] = {k: round(statistics.median(r[k] for r in rs), 3) for k in ("rps", "p50_ms", "p99_ms")}
        out[n]["not_2xx"] = sum(r["not_2xx"] for r in rs)
        out[n].update(session_usage(targets[n][1]))
        out[n]["rounds_rps"] = [r["rps"] for r in rs]
    return out


def ratio(rounds, a, b, key="rps"):
    """Median over rounds of a's figure over b's in the same round."""
    return round(statistics.median(x[key] / y[key] for x, y in zip(rounds[a], rounds[b]) if y[key]), 3)


def fill(src, dst, **kv):
    text = open(src).read()
    for k, v in kv.items():
        text = text.replace(f"@{k}@", str(v))
    open(dst, "w").write(text)


# --- proxy --------------------------------------------------------------------------------

NGINX_JSON_LOG = ("log_format planb escape=json '{\"time\":\"$time_iso8601\",\"method\":\"$request_method\","
                  "\"path\":\"$uri\",\"status\":$status,\"upstream\":\"$upstream_addr\","
                  "\"duration_ms\":$request_time,\"trace\":\"$request_id\"}';\n"
                  "    access_log @RUN@/nginx-access.log planb buffer=64k flush=1s;")


def proxy_env(work, upstream, workers, log_on, listen_port):
    """What a proxy under test is started with (scripts/bench-proxy-candidate.sh reads the same)."""
    return {"LISTEN_ADDR": f"127.0.0.1:{listen_port}", "UPSTREAM_ADDR": f"127.0.0.1:{upstream}", "WORK_DIR": work,
            "THREADS": str(workers), "ACCESS_LOG": "true" if log_on else "false"}


def proxy_anchors(tools, work, workers, log_on):
    """Writes the Nginx and HAProxy configs for one setting and starts the upstream.
    Returns the upstream's port and {name: (port, command, environment)} of Nginx and HAProxy."""
    up, ngx, hap = free_port(), free_port(), free_port()
    kv = dict(RUN=work, UPSTREAM_PORT=up, NGINX_PORT=ngx, HAPROXY_PORT=hap, WORKERS=workers,
              ACCESS_LOG=NGINX_JSON_LOG.replace("@RUN@", work) if log_on else "access_log off;",
              HAPROXY_LOG_GLOBAL="    log stdout format raw local0" if log_on else "",
              HAPROXY_LOG_DEFAULTS="    log global\n    option httplog" if log_on else "")
    for name in ("upstream", "passthrough"):
        fill(f"{HERE}/nginx/{name}.conf.in", f"{work}/nginx-{name}.conf", **kv)
    fill(f"{HERE}/haproxy/passthrough.cfg.in", f"{work}/haproxy.cfg", **kv)
    nginx = [tools["nginx"], "-g", "daemon off;", "-p", work, "-c"]
    p = start(nginx + [f"{work}/nginx-upstream.conf"], f"{work}/upstream.log")
    wait_port(up, "upstream nginx", p, f"{work}/upstream.log")
    return up, {"nginx": (ngx, nginx + [f"{work}/nginx-passthrough.conf"], {}),
                "haproxy": (hap, [tools["haproxy"], "-db", "-f", f"{work}/haproxy.cfg"], {})}


def start_proxy(name, port, cmd, env, work):
    """Starts one proxy under test and checks it passes the upstream's answer through; (url, session id)."""
    log = f"{work}/{name}.log"
    p = start(cmd, log, env=env)
    wait_port(port, name, p, log, timeout=300)
    status, body = http_get(f"http://127.0.0.1:{port}/any/path?x=1")
    if (status, body) != (200, b"ok\n"):
        die(f"{name} did not pass the upstream's answer through: {status} {body[:80]!r}; see {log}")
    return f"http://127.0.0.1:{port}/", p.pid


def proxy_cell(args, tools, workers, log_on):
    """One setting: upstream, Nginx, HAProxy, the bare proxy and planb-proxy, in alternating rounds."""
    work = tempfile.mkdtemp(prefix=f"planb-bench-proxy-w{workers}-log{'on' if log_on else 'off'}-")
    os.chmod(work, 0o755)  # nginx's workers may run as another user
    up, specs = proxy_anchors(tools, work, workers, log_on)
    bare, planb = free_port(), free_port()
    specs["bare_pingora"] = (bare, [args.bare_pingora], proxy_env(work, up, workers, log_on, bare))
    specs["planb_proxy"] = (planb, [os.path.join(ROOT, "scripts", "bench-proxy-candidate.sh")],
                            {**proxy_env(work, up, workers, log_on, planb), "PLANB_PROXY_BIN": args.planb_proxy})
    targets = {name: start_proxy(name, *spec, work) for name, spec in specs.items()}
    say(f"proxy, {workers} worker(s), access log {'on' if log_on else 'off'}: {args.rounds} rounds of {args.duration}s")
    try:
        rounds = alternate(args, targets)
        result = summarize(rounds, targets)
    finally:
        stop_all()
    shutil.rmtree(work, ignore_errors=True)
    faster = max(("nginx", "haproxy"), key=lambda n: result[n]["rps"])
    return {"workers": workers, "access_log": log_on, "targets": result,
            "ratios": {"planb_over_bare_pingora": ratio(rounds, "planb_proxy", "bare_pingora"),
                       "planb_over_nginx": ratio(rounds, "planb_proxy", "nginx"),
                       "planb_over_haproxy": ratio(rounds, "planb_proxy", "haproxy"),
                       f"planb_over_faster_{faster}": ratio(rounds, "planb_proxy", faster),
                       "planb_p99_over_nginx": ratio(rounds, "planb_proxy", "nginx", "p99_ms")}}


def bench_proxy(args):
    tools = ensure_apt_tools({"nginx": "nginx", "haproxy": "haproxy"})
    args.planb_proxy = os.path.abspath(args.planb_proxy or release_binary("planb-proxy"))
    args.bare_pingora = build_floor("bare-pingora")
    info = {"nginx": version([tools["nginx"], "-v"]), "haproxy": version([tools["haproxy"], "-v"]),
            "planb_proxy_bin": os.path.relpath(args.planb_proxy, ROOT)}
    cells = [proxy_cell(args, tools, w, log == "on") for w in args.workers for log in args.access_log]
    return info, cells


# --- verify -------------------------------------------------------------------------------

MINT = r"""
import boto3, json, sys
kw = dict(endpoint_url=sys.argv[1], region_name="ap-northeast-1", aws_access_key_id="test", aws_secret_access_key="test")
idp = boto3.client("cognito-idp", **kw)
pool = idp.create_user_pool(PoolName="bench")["UserPool"]["Id"]
client = idp.create_user_pool_client(UserPoolId=pool, ClientName="bench",
    ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"])["UserPoolClient"]["ClientId"]
idp.admin_create_user(UserPoolId=pool, Username="alice", MessageAction="SUPPRESS")
idp.admin_set_user_password(UserPoolId=pool, Username="alice", Password="Bench-Passw0rd!", Permanent=True)
auth = idp.admin_initiate_auth(UserPoolId=pool, ClientId=client, AuthFlow="ADMIN_NO_SRP_AUTH",
    AuthParameters={"USERNAME": "alice", "PASSWORD": "Bench-Passw0rd!"})
json.dump({"pool": pool, "client": client, "token": auth["AuthenticationResult"]["AccessToken"]}, sys.stdout)
"""


def mint_token(work):
    """moto's server as Cognito: a pool, an app client and a user's access token.
    Returns the environment every target verifies against, and the token."""
    py, moto_server = os.path.join(VENV, "bin", "python"), os.path.join(VENV, "bin", "moto_server")
    if not os.access(moto_server, os.X_OK):
        die(f"{moto_server} is missing: make venv")
    moto = free_port()
    p = start([moto_server, "-H", "127.0.0.1", "-p", str(moto)], f"{work}/moto.log")
    wait_port(moto, "moto_server", p, f"{work}/moto.log")
    m = json.loads(subprocess.run([py, "-c", MINT, f"http://127.0.0.1:{moto}"], capture_output=True, check=True,
                                  text=True).stdout)
    env = {"COGNITO_USER_POOL_ID": m["pool"], "COGNITO_REGION": "ap-northeast-1", "COGNITO_APP_CLIENT_ID": m["client"],
           "COGNITO_JWKS_URL": f"http://127.0.0.1:{moto}/{m['pool']}/.well-known/jwks.json", "RUST_LOG": "warn"}
    return env, m["token"]


def start_verifier(name, cmd, env, cwd, work, token, ready=None):
    """Starts one target on its own port and checks that it answers 200 to the token and
    401 to a tampered one and to none; returns (url, session id, the 200's body)."""
    port, log = free_port(), f"{work}/{name}.log"
    p = start(cmd(port), log, env=env(port), cwd=cwd)
    wait_port(port, name, p, log)
    if ready:  # planb-backend listens at once and answers 503 on /ready until the JWKS is in
        wait_ready(f"http://127.0.0.1:{port}{ready}", name, log)
    url = f"http://127.0.0.1:{port}/api/me"
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    (good, body), bad, none = (http_get(url, h) for h in ({"x-amzn-oidc-accesstoken": token},
                                                           {"x-amzn-oidc-accesstoken": tampered}, {}))
    if (good, bad[0], none[0]) != (200, 401, 401):
        die(f"{name}: valid, tampered, missing token answered {(good, bad[0], none[0])}, not (200, 401, 401); see {log}")
    return url, p.pid, body


def start_floor(bare_axum, body, workers, work):
    """The bare axum server answering planb-backend's body; checks it answers exactly that."""
    port, log = free_port(), f"{work}/bare_axum.log"
    p = start([bare_axum], log, env={"LISTEN_ADDR": f"127.0.0.1:{port}", "BODY": body.decode(),
                                     "TOKIO_WORKER_THREADS": str(workers)})
    wait_port(port, "bare_axum", p, log)
    url = f"http://127.0.0.1:{port}/api/me"
    if http_get(url) != (200, body):
        die(f"bare_axum did not answer planb-backend's body: {http_get(url)}; see {log}")
    return url, p.pid


def verify_cell(args, env, token, workers):
    """One worker count: the seed, aws-jwt-verify, the floor and planb-backend (cache on and
    off), each with `workers` processes or threads, in alternating rounds."""
    work = tempfile.mkdtemp(prefix=f"planb-bench-verify-w{workers}-")
    first = len(STARTED)  # moto's server, started before, serves every cell
    n = str(workers)
    listen = lambda port: {**env, "LISTEN_ADDR": f"127.0.0.1:{port}", "TOKIO_WORKER_THREADS": n}
    uvicorn = lambda port: [args.seed_uvicorn, "app.main_app:app", "--host", "127.0.0.1", "--port", str(port),
                            "--log-level", "warning", "--workers", n]
    specs = {"seed_fastapi": (uvicorn, lambda port: env, args.seed_dir, None),
             "aws_jwt_verify": (lambda port: ["node", "server.mjs"],
                                lambda port: {**env, "PORT": str(port), "WORKERS": n}, args.ajv, None),
             "planb_backend": (lambda port: [args.planb_backend], listen, None, "/ready"),
             "planb_backend_no_cache": (lambda port: [args.planb_backend],
                                        lambda port: {**listen(port), "TOKEN_CACHE_SIZE": "0"}, None, "/ready")}
    targets = {}
    try:
        for name, (cmd, e, cwd, ready) in specs.items():
            url, pid, body = start_verifier(name, cmd, e, cwd, work, token, ready)
            targets[name] = (url, pid)
            if name == "planb_backend":
                targets["bare_axum"] = start_floor(args.bare_axum, body, workers, work)
        say(f"verify, {workers} worker(s): {args.rounds} rounds of {args.duration}s")
        rounds = alternate(args, targets, headers=(f"x-amzn-oidc-accesstoken: {token}",))
        result = summarize(rounds, targets)
    finally:
        stop_all(first)
    shutil.rmtree(work, ignore_errors=True)
    return {"route": "GET /api/me", "workers": workers, "targets": result,
            "ratios": {"planb_over_bare_axum": ratio(rounds, "planb_backend", "bare_axum"),
                       "planb_no_cache_over_bare_axum": ratio(rounds, "planb_backend_no_cache", "bare_axum"),
                       "planb_over_aws_jwt_verify": ratio(rounds, "planb_backend", "aws_jwt_verify"),
                       "planb_no_cache_over_aws_jwt_verify": ratio(rounds, "planb_backend_no_cache", "aws_jwt_verify"),
                       "planb_over_seed": ratio(rounds, "planb_backend", "seed_fastapi"),
                       "planb_no_cache_over_seed": ratio(rounds, "planb_backend_no_cache", "seed_fastapi"),
                       "planb_p99_over_aws_jwt_verify": ratio(rounds, "planb_backend", "aws_jwt_verify", "p99_ms")}}


def bench_verify(args):
    if not which("node") or not which("npm"):
        ensure_apt_tools({"node": "nodejs", "npm": "npm"})
    args.ajv = ensure_aws_jwt_verify()
    args.seed_dir, args.seed_uvicorn = ensure_seed()
    args.planb_backend = os.path.abspath(args.planb_backend or release_binary("planb-backend"))
    args.bare_axum = build_floor("bare-axum")
    work = tempfile.mkdtemp(prefix="planb-bench-moto-")
    env, token = mint_token(work)
    try:
        cells = [verify_cell(args, env, token, w) for w in args.workers]
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    info = {"node": version(["node", "--version"]),
            "aws_jwt_verify": json.load(open(os.path.join(args.ajv, "node_modules", "aws-jwt-verify", "package.json")))["version"],
            "seed": version([args.seed_uvicorn, "--version"]),
            "planb_backend_bin": os.path.relpath(args.planb_backend, ROOT)}
    return info, cells


# --- the run ------------------------------------------------------------------------------

def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:"))
    osname = next((l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME=")),
                  platform.system()) if os.path.exists("/etc/os-release") else platform.system()
    return {"cpu": cpu, "cpus": os.cpu_count(), "mem_gib": round(mem / 2**20, 1), "os": osname,
            "kernel": platform.release(), "hostname": socket.gethostname()}


def git(*a):
    r = subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def print_table(what, cells):
    for c in cells:
        head = (f"workers {c['workers']}, access log {'on' if c['access_log'] else 'off'}" if what == "proxy"
                else f"{c['route']}, workers {c['workers']}")
        print(f"\n{what}: {head}", file=sys.stderr)
        for n, t in c["targets"].items():
            print(f"  {n:>24}: {t['rps']:>9.0f} req/s  p50 {t['p50_ms']:6.2f} ms  p99 {t['p99_ms']:6.2f} ms  "
                  f"{t['rss_kib'] / 1024:6.1f} MiB  {t['processes']} proc {t['threads']:>3} thr  not 2xx {t['not_2xx']}",
                  file=sys.stderr)
        print("  " + "  ".join(f"{k} {v}x" for k, v in c["ratios"].items()), file=sys.stderr)


def duration(text):
    m = re.fullmatch(r"(\d+)(s|m)?", text)
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds, e.g. 8s or 8 (or minutes, 1m)")
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def csv_of(choices, conv=str):
    def parse(text):
        items = [conv(x) for x in re.split(r"[,\s]+", text.strip()) if x]
        bad = [x for x in items if choices and x not in choices]
        if not items or bad:
            raise argparse.ArgumentTypeError(f"{text!r}: give one or more of {', '.join(map(str, choices))}")
        return items
    return parse


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["proxy", "verify"])
    ap.add_argument("--rounds", type=int, default=3, help="rounds per target (default 3)")
    ap.add_argument("--duration", type=duration, default=8, help="length of one round, e.g. 8s (default)")
    ap.add_argument("-c", "--connections", type=int, default=50, help="oha's connections (default 50)")
    ap.add_argument("--workers", type=csv_of([1, 2], int), default=[1, 2],
                    help="worker processes/threads of every target, e.g. 1 or 1,2 (default 1,2); verify: "
                         "planb-backend's and the floor's tokio threads, aws-jwt-verify's node:cluster workers, "
                         "the seed's uvicorn workers")
    ap.add_argument("--access-log", type=csv_of(["off", "on"]), default=["off", "on"],
                    help="proxy: off, on or off,on (default): every proxy logs every request or none does")
    ap.add_argument("--planb-proxy", metavar="BIN", help="proxy: another planb-proxy build, e.g. the static musl one")
    ap.add_argument("--planb-backend", metavar="BIN", help="verify: another planb-backend build")
    ap.add_argument("--out", metavar="FILE", help="where the JSON result goes (default bench/results/DATE-WHAT.json)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.oha = ensure_oha()
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    try:
        info, cells = (bench_proxy if args.what == "proxy" else bench_verify)(args)
    finally:
        stop_all()
    result = {"what": args.what, "date": started.isoformat(timespec="seconds"),
              "command": " ".join(["bench/bench.py"] + sys.argv[1:]),
              "git": {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))},
              "machine": {**machine(), "load_before": [round(x, 2) for x in load_before],
                          "load_after": [round(x, 2) for x in os.getloadavg()]},
              "settings": {"rounds": args.rounds, "duration_s": args.duration, "connections": args.connections,
                           "oha": version([args.oha, "--version"]), **info},
              "cells": cells}
    out = args.out or os.path.join(HERE, "results", f"{started.strftime('%Y%m%dT%H%M%SZ')}-{args.what}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print_table(args.what, cells)
    print(f"\nbench: wrote {os.path.relpath(out)}", file=sys.stderr)


if __name__ == "__main__":
    main()
