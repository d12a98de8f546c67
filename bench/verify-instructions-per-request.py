#!/usr/bin/env python3
"""Instructions per cached GET /api/me, side by side: planb-backend builds under callgrind.

  bench/verify-instructions-per-request.py [--seconds S] [-c C] NAME=BINARY [NAME=BINARY ...]

Runs each BINARY under `valgrind --tool=callgrind` behind verify-cpu-per-request.py
(moto's server as Cognito, a real token, one round of S seconds over C connections, a
warm-up first), then counts from each profile the user-space instructions per request:
requests are the calls to hyper's response encoder, and start-up (`main`) is left out.
Printed twice: with the SHA-256 of the token (the cache key of builds before 2026-12-07) and
without it, since valgrind runs aws-lc's AVX code for it where the CPU runs its SHA
extensions at a fraction of the cost. Deterministic to about 0.5% where CPU time on a
shared 2-vCPU VM moves 10-20%: how a change of the request path is judged first.
Needs valgrind (callgrind_annotate) besides what verify-cpu-per-request.py needs.
"""
import argparse, glob, json, os, re, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ENCODE = re.compile(r"\*  .*<hyper::proto::h1::role::Server as hyper::proto::h1::Http1Transaction>::encode \[")


def inclusive(tree, pattern):
    """The inclusive count of the first function of `tree` whose own line matches `pattern`."""
    m = re.search(r"^\s*([\d,]+) \([^)]*\)\s+\*  .*" + pattern, tree, re.M)
    return int(m.group(1).replace(",", "")) if m else 0


def per_request(profile):
    """(requests, instructions per request with SHA-256, without) of one callgrind profile."""
    tree = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--tree=caller", "--threshold=100", profile],
                          capture_output=True, text=True, check=True).stdout
    lines = tree.splitlines()
    # The line before the encoder's own line is its caller, with the call count.
    at = next(i for i, line in enumerate(lines) if ENCODE.search(line))
    requests = int(re.search(r"\(([\d,]+)x\)", lines[at - 1]).group(1).replace(",", ""))
    total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", tree).group(1).replace(",", ""))
    served = total - inclusive(tree, r"\?\?\?:main \[")
    sha = inclusive(tree, r"aws_lc_\w+_SHA256 \[")
    return requests, round(served / requests), round((served - sha) / requests)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="seconds of load (default 10)")
    ap.add_argument("-c", type=int, default=10, help="connections (default 10)")
    ap.add_argument("targets", nargs="+", metavar="NAME=BINARY")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_annotate"):
        if not shutil.which(tool):
            sys.exit(f"verify-instructions-per-request: {tool} is missing (Debian: apt-get install valgrind)")
    work = tempfile.mkdtemp(prefix="planb-verify-instructions-")
    wrapped = []
    for t in args.targets:
        name, sep, path = t.partition("=")
        if not sep or not os.access(path, os.X_OK):
            sys.exit(f"verify-instructions-per-request: {t}: expected NAME=BINARY with an executable BINARY")
        script = os.path.join(work, f"{name}.sh")
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\nexec valgrind --tool=callgrind --vgdb=no --callgrind-out-file={work}/{name}.%p.out "
                    f"{os.path.abspath(path)}\n")
        os.chmod(script, 0o755)
        wrapped.append(f"{name}={script}")
    subprocess.run([sys.executable, os.path.join(HERE, "verify-cpu-per-request.py"), "--rounds", "1",
                    "--seconds", str(args.seconds), "-c", str(args.c), *wrapped],
                   stdout=subprocess.DEVNULL, check=True)
    result = {}
    for t in args.targets:
        name = t.partition("=")[0]
        profile = max(glob.glob(os.path.join(work, f"{name}.*.out")), key=os.path.getmtime)
        requests, with_sha, without_sha = per_request(profile)
        result[name] = {"requests": requests, "instructions_per_request": with_sha,
                        "instructions_per_request_without_sha256": without_sha}
        print(f"{name:>12}: {with_sha} instructions/request, {without_sha} without SHA-256 ({requests} requests)",
              file=sys.stderr)
    print(json.dumps({"route": "GET /api/me", "token_cache": True, "connections": args.c,
                      "seconds": args.seconds, "targets": result, "profiles": work}, indent=1))


if __name__ == "__main__":
    main()
