#!/usr/bin/env python3
"""Markdown tables of bench.py results, as docs/benchmarks.md shows them.

  bench/report.py RESULT.json [RESULT.json ...]

For each file: a line with its date, machine, command and commit, then one table
(proxy: one row per setting; verify: one table per worker count, one row per target). The ratios are bench.py's:
medians of per-round ratios.
"""
import json, sys


def rps(t):
    return f"{t['rps']:,.0f}"


def header(r):
    m = r["machine"]
    return (f"{r['date'][:10]}, {m['cpu']} ({m['cpus']} CPUs, {m['mem_gib']} GiB, {m['os']}), load average "
            f"{m['load_before'][0]} before and {m['load_after'][0]} after; commit `{(r['git']['commit'] or '?')[:7]}`"
            f"{' with local changes' if r['git']['dirty'] else ''}; `{r['command']}`, "
            f"{r['settings']['rounds']} rounds of {r['settings']['duration_s']} s, {r['settings']['connections']} connections")


def proxy(r):
    rows = ["| workers | access log | planb-proxy | bare Pingora | Nginx | HAProxy | planb / bare | planb / Nginx | planb / HAProxy | p99 planb / Nginx | planb RSS |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in r["cells"]:
        t, q = c["targets"], c["ratios"]
        p = t["planb_proxy"]
        rows.append(f"| {c['workers']} | {'on' if c['access_log'] else 'off'} | {rps(p)} req/s, p99 {p['p99_ms']:.1f} ms "
                    f"| {rps(t['bare_pingora'])} | {rps(t['nginx'])} | {rps(t['haproxy'])} "
                    f"| **{q['planb_over_bare_pingora']:.2f}x** | **{q['planb_over_nginx']:.2f}x** "
                    f"| **{q['planb_over_haproxy']:.2f}x** | {q['planb_p99_over_nginx']:.2f}x | {p['rss_kib'] / 1024:.0f} MiB |")
    return rows


VERIFY_NAMES = {"planb_backend": "planb-backend (defaults: token cache on)",
                "planb_backend_no_cache": "planb-backend, `TOKEN_CACHE_SIZE=0`", "bare_axum": "bare axum (the floor)",
                "aws_jwt_verify": "aws-jwt-verify (Node)", "seed_fastapi": "the seed (FastAPI, uvicorn)"}
# planb-backend's ratio to each target, the key of that ratio in a cell's `ratios`.
VERIFY_OVER = {"bare_axum": "planb_over_bare_axum", "aws_jwt_verify": "planb_over_aws_jwt_verify",
               "seed_fastapi": "planb_over_seed"}


def verify(r):
    """One table per cell (worker count); results without a `workers` key had one process each."""
    rows = []
    for c in r["cells"]:
        q = c["ratios"]
        rows += [f"workers {c.get('workers', 1)}:", "",
                 "| target | req/s | p50 | p99 | RSS | processes, threads | planb-backend over it |",
                 "|---|---|---|---|---|---|---|"]
        for n, t in c["targets"].items():
            over = f"**{q[VERIFY_OVER[n]]:.2f}x**" if VERIFY_OVER.get(n) in q else ""
            procs = f"{t['processes']}, {t['threads']}" if "processes" in t else ""
            rows.append(f"| {VERIFY_NAMES.get(n, n)} | {rps(t)} | {t['p50_ms']:.2f} ms | {t['p99_ms']:.2f} ms "
                        f"| {t['rss_kib'] / 1024:.0f} MiB | {procs} | {over} |")
        rows += ["", "Ratios (medians of per-round ratios): " + ", ".join(f"`{k}` {v:.2f}x" for k, v in q.items()), ""]
    return rows


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        r = json.load(open(path))
        print(header(r) + f"; JSON: `{path}`\n")
        print("\n".join(proxy(r) if r["what"] == "proxy" else verify(r)) + "\n")


if __name__ == "__main__":
    main()
