#!/usr/bin/env bash
# Runs the bootstrap test (README.md): the Debian image (built once, cached), then pytest inside a
# network namespace of its own, where moto, the IMDS and ALB2 stand-ins and the container meet on
# loopback and 169.254.169.254. The namespace is removed on exit, whatever happened.
# Usage: run.sh [pytest args]; PLANB_BOOT_PROXY is the x86_64 musl planb-proxy under test.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

fail() { echo "bootstrap test: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || fail "needs root (systemd-nspawn, a network namespace)"
for tool in systemd-nspawn nsenter ip; do
  command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install -y systemd-container iproute2 util-linux)"
done
python=${PYTHON:-$repo/.venv/bin/python}
[[ -x $python ]] || fail "$python is missing: make venv"

PLANB_BOOT_ROOTFS=$("$here/rootfs.sh")
export PLANB_BOOT_ROOTFS

# Namespaces of earlier runs that were killed before their trap ran.
for stale in $(ip netns list | awk '$1 ~ /^planb-boot-[0-9]+$/ {print $1}'); do
  kill -0 "${stale#planb-boot-}" 2>/dev/null || ip netns delete "$stale"
done
ns=planb-boot-$$
ip netns add "$ns"
trap 'ip netns delete "$ns"' EXIT
ip -n "$ns" link set lo up
# EC2's metadata address, local to the namespace: the IMDS stand-in listens there.
ip -n "$ns" addr add 169.254.169.254/32 dev lo
# nsenter, not `ip netns exec`: that remounts /sys without the cgroup hierarchies systemd-nspawn
# needs; only the network namespace changes here.
nsenter --net="/run/netns/$ns" "$python" -m pytest -p no:cacheprovider -v --durations=0 "$here" "$@"
