#!/usr/bin/env python3
"""CPU time per verified request, side by side: planb-backend builds A/B'd on GET /api/me.

  bench/verify-cpu-per-request.py [--rounds R] [--seconds S] [-c C] [--no-cache] \
      NAME=BINARY [NAME=BINARY ...]

Starts moto's server (make venv) as Cognito, mints a real access token, starts each
BINARY with the same pool and JWKS URL, then loads each in turn with oha (S seconds,
C connections, R rounds, a 2 s warm-up first) and reads the CPU time (user + system,
from /proc) the backend spent. Prints per round and per target the req/s and the
microseconds of CPU per request, then the medians as one JSON object.

req/s on a 2-core VM moves by tens of percent between runs; CPU per request moves a
few percent, so it is how a change of the request path (a layer, an allocator) is
judged. --no-cache runs every BINARY with TOKEN_CACHE_SIZE=0.
"""
import argparse, importlib.util, json, os, statistics, subprocess, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
# cpu-per-request.py, beside this file: its CPU reading from /proc, and through it
# bench.py's process, port, token-minting and readiness helpers.
_spec = importlib.util.spec_from_file_location("cpu_per_request", os.path.join(HERE, "cpu-per-request.py"))
cpu_per_request = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpu_per_request)
bench = cpu_per_request.bench


def cpu_seconds(sid):
    """User + system seconds of the processes of session `sid` so far."""
    return sum(cpu_per_request.session_cpu(sid))


def oha(url, token, secs, conns):
    out = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-c", str(conns), "-z", f"{secs}s",
                          "-H", f"x-amzn-oidc-accesstoken: {token}", url], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def wait_answering(url, token, what, log, timeout=60):
    """Waits until `url` answers 200 to `token` (under valgrind a start takes seconds)."""
    end = time.time() + timeout
    while bench.http_get(url, {"x-amzn-oidc-accesstoken": token})[0] != 200:
        if time.time() > end:
            bench.die(f"{what}: {url} did not answer 200 to the token within {timeout}s; see {log}")
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="rounds per target (default 5)")
    ap.add_argument("--seconds", type=int, default=6, help="seconds of load per round (default 6)")
    ap.add_argument("-c", type=int, default=50, help="connections (default 50)")
    ap.add_argument("--no-cache", action="store_true", help="TOKEN_CACHE_SIZE=0 for every target")
    ap.add_argument("targets", nargs="+", metavar="NAME=BINARY")
    args = ap.parse_args()
    targets = {}
    for t in args.targets:
        name, sep, path = t.partition("=")
        if not sep or not os.access(path, os.X_OK):
            bench.die(f"{t}: expected NAME=BINARY with an executable BINARY")
        targets[name] = os.path.abspath(path)
    bench.ensure_oha()
    py, moto_server = os.path.join(bench.VENV, "bin", "python"), os.path.join(bench.VENV, "bin", "moto_server")
    if not os.access(moto_server, os.X_OK):
        bench.die(f"{moto_server} is missing: make venv")
    work = tempfile.mkdtemp(prefix="planb-verify-cpu-")
    try:
        moto = bench.free_port()
        p = bench.start([moto_server, "-H", "127.0.0.1", "-p", str(moto)], f"{work}/moto.log")
        bench.wait_port(moto, "moto_server", p, f"{work}/moto.log")
        m = json.loads(subprocess.run([py, "-c", bench.MINT, f"http://127.0.0.1:{moto}"], capture_output=True,
                                      check=True, text=True).stdout)
        env = {"COGNITO_USER_POOL_ID": m["pool"], "COGNITO_REGION": "ap-northeast-1",
               "COGNITO_APP_CLIENT_ID": m["client"], "RUST_LOG": "warn",
               "COGNITO_JWKS_URL": f"http://127.0.0.1:{moto}/{m['pool']}/.well-known/jwks.json"}
        if args.no_cache:
            env["TOKEN_CACHE_SIZE"] = "0"
        running = {}
        for name, path in targets.items():
            port, log = bench.free_port(), f"{work}/{name}.log"
            proc = bench.start([path], log, env={**env, "LISTEN_ADDR": f"127.0.0.1:{port}"})
            bench.wait_port(port, name, proc, log)
            # Ready once the route answers the token: planb-backend's keys are in, and a
            # floor without a /ready route (bench/bare-axum) is judged the same way.
            url = f"http://127.0.0.1:{port}/api/me"
            wait_answering(url, m["token"], name, log)
            # bench.start gives each its own session: the session id is its pid.
            running[name] = (url, proc.pid)
        rounds = {name: [] for name in running}
        for r in range(args.rounds):
            for name, (url, pid) in running.items():
                oha(url, m["token"], 2, args.c)  # warm-up: connections, caches, allocator
                before = cpu_seconds(pid)
                d = oha(url, m["token"], args.seconds, args.c)
                used = cpu_seconds(pid) - before
                codes = d["statusCodeDistribution"]
                if set(codes) != {"200"}:
                    bench.die(f"{name}: answers other than 200: {codes}")
                reqs = codes["200"]
                rounds[name].append({"rps": round(d["summary"]["requestsPerSec"]), "cpu_us": round(used / reqs * 1e6, 2)})
                bench.say(f"round {r + 1}/{args.rounds}: {name} {rounds[name][-1]['rps']} req/s, "
                          f"{rounds[name][-1]['cpu_us']} us CPU per request")
    finally:
        bench.stop_all()
    result = {name: {"median_rps": statistics.median(x["rps"] for x in v),
                     "median_cpu_us_per_request": statistics.median(x["cpu_us"] for x in v), "rounds": v}
              for name, v in rounds.items()}
    print(json.dumps({"route": "GET /api/me", "token_cache": not args.no_cache, "connections": args.c,
                      "seconds": args.seconds, "targets": result}, indent=1))


if __name__ == "__main__":
    main()
