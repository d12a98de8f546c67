#!/usr/bin/env python3
"""CPU time per proxied request, side by side: a steadier A/B than req/s on a noisy host.

  scripts/cpu-per-request.py [-n N] [-c C] [--rounds R] [--access-log] \
      NAME=CMD [NAME=CMD ...]

Starts the upstream, tuned Nginx and HAProxy from ../shared/anchors (the same
templates bench.py uses, one worker) and each NAME=CMD (started with
bench.py's environment: LISTEN_ADDR, UPSTREAM_ADDR, WORK_DIR, ACCESS_LOG), then
sends N requests over C keep-alive connections with oha to each in turn, R
rounds, and reads the CPU time (user + system, from /proc) every process of
each target spent on them. Prints, per target, the median microseconds of CPU
per request (user, system, total) and req/s, then one JSON object.

req/s on a 2-core VM moves 10-20 % between runs (steal, oha and the upstream
on the same cores); CPU per request moves a few %, so it is what a change to
the request path is judged by before bench.py confirms it.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHORS = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "anchors"))
bench = None  # ../shared/anchors/bench.py: start, stop_all, wait_port, free_port, fill

TICK = os.sysconf("SC_CLK_TCK")


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
    out = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-n", str(n), "-c", str(c), url],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    ok = r.get("statusCodeDistribution", {}).get("200", 0)
    if ok != n:
        sys.exit(f"cpu-per-request: {url}: {ok} of {n} answered 200")
    return r["summary"]["requestsPerSec"]


def main():
    global bench, ANCHORS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200_000, help="requests per round (default 200000)")
    ap.add_argument("-c", type=int, default=50, help="connections (default 50)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per target (default 5)")
    ap.add_argument("--access-log", action="store_true", help="every request logged, as bench.py --access-log")
    ap.add_argument("--no-anchors", action="store_true", help="only the NAME=CMD targets")
    ap.add_argument("--anchors", default=ANCHORS, metavar="DIR",
                    help="where bench.py and its nginx/haproxy templates are (default ../shared/anchors)")
    ap.add_argument("--ref", metavar="NAME", help="report each target's CPU per request over NAME's, "
                    "the median of per-round ratios (default: the first NAME=CMD)")
    ap.add_argument("targets", nargs="+", metavar="NAME=CMD")
    args = ap.parse_args()
    ANCHORS = os.path.abspath(args.anchors)
    if not os.path.exists(f"{ANCHORS}/bench.py"):
        sys.exit(f"cpu-per-request: no bench.py in {ANCHORS} (--anchors)")
    sys.path.insert(0, ANCHORS)
    import bench as anchors_bench
    bench = anchors_bench
    work = tempfile.mkdtemp(prefix="cpu-per-request-")
    try:
        run(args, work)
    finally:
        bench.stop_all()


def run(args, work):
    up, ngx, hap = bench.free_port(), bench.free_port(), bench.free_port()
    kv = dict(RUN=work, UPSTREAM_PORT=up, ANCHOR_PORT=ngx, HAPROXY_PORT=hap, WORKERS=1,
              ACCESS_LOG="access_log off;", HAPROXY_LOG_GLOBAL="", HAPROXY_LOG_DEFAULTS="",
              LOCATION='location / { return 200 "ok\\n"; }')
    if args.access_log:
        kv["ACCESS_LOG"] = ("log_format planb escape=json '{\"time\":\"$time_iso8601\",\"method\":\"$request_method\","
                            "\"path\":\"$request_uri\",\"status\":$status,\"bytes\":$body_bytes_sent,"
                            "\"upstream\":\"$upstream_addr\",\"duration_ms\":$request_time,\"client\":\"$remote_addr\"}';\n"
                            f"    access_log {work}/anchor-access.log planb buffer=64k flush=1s;")
        kv["HAPROXY_LOG_GLOBAL"] = "    log stdout format raw local0"
        kv["HAPROXY_LOG_DEFAULTS"] = "    log global\n    option httplog"
    bench.fill(f"{ANCHORS}/nginx/upstream.conf.in", f"{work}/upstream.conf", **kv)
    bench.start(["nginx", "-g", "daemon off;", "-c", f"{work}/upstream.conf", "-p", work], log=f"{work}/upstream.log")
    bench.wait_port(up, "upstream nginx")
    targets = {}  # name -> (url, session id)
    if not args.no_anchors:
        bench.fill(f"{ANCHORS}/nginx/passthrough.conf.in", f"{work}/anchor.conf", **kv)
        bench.fill(f"{ANCHORS}/haproxy/passthrough.cfg.in", f"{work}/haproxy.cfg", **kv)
        p = bench.start(["nginx", "-g", "daemon off;", "-c", f"{work}/anchor.conf", "-p", work],
                        log=f"{work}/anchor.log")
        targets["nginx"] = (f"http://127.0.0.1:{ngx}/", p.pid)
        p = bench.start(["haproxy", "-db", "-f", f"{work}/haproxy.cfg"], log=f"{work}/haproxy.log")
        targets["haproxy"] = (f"http://127.0.0.1:{hap}/", p.pid)
        bench.wait_port(ngx, "anchor nginx"); bench.wait_port(hap, "anchor haproxy")
    for spec in args.targets:
        name, _, cmd = spec.partition("=")
        port = bench.free_port()
        log = f"{work}/{name}.log"
        os.makedirs(f"{work}/{name}", exist_ok=True)
        p = bench.start(cmd.split(), env={"LISTEN_ADDR": f"127.0.0.1:{port}", "UPSTREAM_ADDR": f"127.0.0.1:{up}",
                                          "WORK_DIR": f"{work}/{name}",
                                          "ACCESS_LOG": "true" if args.access_log else "false"}, log=log)
        bench.wait_port(port, name, 300, p, log)
        targets[name] = (f"http://127.0.0.1:{port}/", p.pid)
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
