#!/usr/bin/env bash
# Prints the path of the Debian root file system the bootstrap test boots, building it first when
# the cache lacks it. Built with debootstrap from Debian's own packages; cached outside the clone
# (CI clones afresh on the same machine) under a name keyed by everything that goes into it: the
# suite, the mirror, the package list and this script. A finished build is renamed into place, so
# an interrupted one is never used.
#
# What the image adds to a minimal Debian, and why:
# - systemd (booted by systemd-nspawn), curl (user data's health and IMDS calls), logrotate and
#   procps (/bin/kill, the unit's ExecReload) as Amazon Linux 2023 has them;
# - awscli, Debian's AWS CLI v2 (Amazon Linux 2023 ships v2): the real `aws` behind the aws shim;
# - the three shims, as links into /opt/planb-boot/shims, which the test binds at boot:
#   /usr/local/bin/aws, /usr/bin/dnf, /opt/aws/bin/cfn-signal;
# - planb-user-data.service, the stand-in for cloud-init's final stage: runs the user data once
#   the network is up, as root, its output in the journal.
#
# Env: PLANB_BOOT_CACHE (default /var/cache/planb), PLANB_BOOT_SUITE (default bookworm),
# PLANB_BOOT_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

cache=${PLANB_BOOT_CACHE:-/var/cache/planb}
suite=${PLANB_BOOT_SUITE:-bookworm}
mirror=${PLANB_BOOT_MIRROR:-http://deb.debian.org/debian}
base=systemd,systemd-sysv,dbus,curl,logrotate,procps,ca-certificates
# Installed with apt inside the new root: debootstrap's --include does not resolve awscli's
# dependencies far enough for them to configure (python3-cryptography fails).
extra=(awscli)

fail() { echo "bootstrap rootfs: $*" >&2; exit 1; }
command -v debootstrap >/dev/null || fail "debootstrap is missing (apt-get install -y debootstrap)"

key=$( { echo "$suite $mirror $base ${extra[*]}"; cat "$0"; } | sha256sum | cut -c1-16)
root=$cache/bootstrap-rootfs-$suite-$key
if [[ -f $root/.planb-complete ]]; then
  echo "$root"
  exit 0
fi

mkdir -p "$cache"
building=$root.building.$$
trap 'rm -rf "$building"' EXIT
echo "bootstrap rootfs: building $root (debootstrap $suite from $mirror)" >&2
log=$cache/bootstrap-rootfs-$suite.log
debootstrap --variant=minbase --include="$base" "$suite" "$building" "$mirror" >"$log" 2>&1 ||
  { cp "$building/debootstrap/debootstrap.log" "$log.debootstrap" 2>/dev/null; tail -20 "$log" >&2; fail "debootstrap failed (logs: $log*)"; }
# --keep-unit --register=no: no host systemd is asked for anything (CI machines need not run it).
systemd-nspawn --quiet --keep-unit --register=no --resolv-conf=copy-host --directory="$building" \
  --setenv=DEBIAN_FRONTEND=noninteractive \
  sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${extra[*]} && apt-get clean" >>"$log" 2>&1 ||
  { tail -20 "$log" >&2; fail "apt-get install ${extra[*]} in the new root failed (log: $log)"; }

# The shims: links into the directory the test binds read-only at boot.
mkdir -p "$building/opt/aws/bin" "$building/opt/planb-boot"
ln -sf /opt/planb-boot/shims/aws "$building/usr/local/bin/aws"
ln -sf /opt/planb-boot/shims/dnf "$building/usr/bin/dnf"
ln -sf /opt/planb-boot/shims/cfn-signal "$building/opt/aws/bin/cfn-signal"

cat >"$building/etc/systemd/system/planb-user-data.service" <<'UNIT'
[Unit]
Description=EC2 user data (the bootstrap test's stand-in for cloud-init's final stage)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=/var/lib/cloud/instance/scripts/part-001
WorkingDirectory=/
RemainAfterExit=yes
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/planb-user-data.service "$building/etc/systemd/system/multi-user.target.wants/planb-user-data.service"
# No getty on a console nobody reads; the test reads the journal.
rm -f "$building/etc/systemd/system/getty.target.wants/"*
echo planb-boot >"$building/etc/hostname"
# Answers stay inside the container's own network namespace.
echo 'nameserver 127.0.0.1' >"$building/etc/resolv.conf"
: >"$building/etc/machine-id"
rm -rf "$building/var/cache/apt/archives/"*.deb "$building/var/lib/apt/lists/"*_Packages
touch "$building/.planb-complete"

# Older images of this suite, and builds whose process is gone, are removed.
for old in "$cache/bootstrap-rootfs-$suite-"*; do
  [[ $old == "$building" ]] && continue
  [[ $old == *.building.* ]] && kill -0 "${old##*.}" 2>/dev/null && continue
  rm -rf "$old"
done
mv "$building" "$root"
trap - EXIT
echo "$root"
