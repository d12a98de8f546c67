#!/usr/bin/env python3
"""CPU time per proxied request, side by side: a steadier A/B than req/s on a noisy host.

  bench/cpu-per-request.py [-n N] [-c C] [--rounds R] [--access-log] \
      NAME=CMD [NAME=CMD ...]

Starts the upstream, tuned Nginx and HAProxy (bench.py's templates, one worker)
and each NAME=CMD (started with the environment bench.py gives a proxy:
LISTEN_ADDR, UPSTREAM_ADDR, WORK_DIR, ACCESS_LOG, THREADS=1), then
sends N requests over C keep-alive connections with oha to each in turn, R
rounds, and reads the CPU time (user + system, from /proc) every process of
each target spent on them. Prints, per target, the median microseconds of CPU
per request (user, system, total) and req/s, then one JSON object.

req/s on a 2-core VM moves 10-20 % between runs (steal, oha and the upstream
on the same cores); CPU per request moves a few %, so it is what a change to
the request path is judged by before bench.py confirms it.
"""
import argparse, importlib.util, json, os, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# bench.py, beside this file: its process, port and template helpers.
_spec = importlib.util.spec_from_file_location("bench", os.path.join(HERE, "bench.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

TICK = os.sysconf("SC_CLK_TCK")
OHA = "oha"


def session_cpu(sid):
    """User and system seconds of every live process in session `sid`."""
    user = sys_ = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        if int(f[3]) == sid:  # field 6: session id
            user += int(f[11])
            sys_ += int(f[12])
    return user / TICK, sys_ / TICK


def oha(url, n, c):
    out = subprocess.run([OHA, "--no-tui", "--output-format", "json", "-n", str(n), "-c", str(c), url],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    ok = r.get("statusCodeDistribution", {}).get("200", 0)
    if ok != n:
        sys.exit(f"cpu-per-request: {url}: {ok} of {n} answered 200")
    return r["summary"]["requestsPerSec"]


def main():
    global OHA
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200_000, help="requests per round (default 200000)")
    ap.add_argument("-c", type=int, default=50, help="connections (default 50)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per target (default 5)")
    ap.add_argument("--access-log", action="store_true", help="every request logged, as bench.py --access-log on")
    ap.add_argument("--no-anchors", action="store_true", help="only the NAME=CMD targets")
    ap.add_argument("--ref", metavar="NAME", help="report each target's CPU per request over NAME's, "
                    "the median of per-round ratios (default: the first NAME=CMD)")
    ap.add_argument("targets", nargs="+", metavar="NAME=CMD")
    args = ap.parse_args()
    OHA = bench.ensure_oha()
    tools = bench.ensure_apt_tools({"nginx": "nginx", "haproxy": "haproxy"})
    work = tempfile.mkdtemp(prefix="cpu-per-request-")
    os.chmod(work, 0o755)  # nginx's workers may run as another user
    try:
        run(args, tools, work)
    finally:
        bench.stop_all()


def run(args, tools, work):
    up, specs = bench.proxy_anchors(tools, work, 1, args.access_log)
    if args.no_anchors:
        specs = {}
    for spec in args.targets:
        name, _, cmd = spec.partition("=")
        port = bench.free_port()
        os.makedirs(f"{work}/{name}", exist_ok=True)
        specs[name] = (port, cmd.split(), bench.proxy_env(f"{work}/{name}", up, 1, args.access_log, port))
    targets = {name: bench.start_proxy(name, *spec, work) for name, spec in specs.items()}
    for url, _ in targets.values():  # warm-up: connections, pools, allocator
        oha(url, args.n // 4, args.c)
    res = {n: [] for n in targets}
    for _ in range(args.rounds):
        for name, (url, sid) in targets.items():
            u0, s0 = session_cpu(sid)
            rps = oha(url, args.n, args.c)
            u1, s1 = session_cpu(sid)
            res[name].append({"user_us": (u1 - u0) * 1e6 / args.n, "sys_us": (s1 - s0) * 1e6 / args.n, "rps": rps})
    ref = args.ref or args.targets[0].partition("=")[0]
    out = {}
    for name, rs in res.items():
        med = {k: round(statistics.median(r[k] for r in rs), 2) for k in ("user_us", "sys_us", "rps")}
        med["cpu_us"] = round(statistics.median(r["user_us"] + r["sys_us"] for r in rs), 2)
        med["cpu_us_all_rounds"] = [round(r["user_us"] + r["sys_us"], 2) for r in rs]
        # Per round, against the reference measured in the same round: what
        # the host did to both cancels out.
        med[f"cpu_over_{ref}"] = round(statistics.median(
            (r["user_us"] + r["sys_us"]) / (q["user_us"] + q["sys_us"]) for r, q in zip(rs, res[ref])), 3)
        out[name] = med
        print(f"{name:>12}: {med['cpu_us']:6.2f} us/request (user {med['user_us']:.2f}, sys {med['sys_us']:.2f}), "
              f"{med['rps']:.0f} req/s, {med[f'cpu_over_{ref}']:.3f}x {ref}'s CPU", file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
