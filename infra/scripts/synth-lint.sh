#!/usr/bin/env bash
# Gate: `cdk synth` (cdk-nag's AwsSolutions pack runs inside it and fails it on any finding that
# is not acknowledged with a reason), then cfn-lint on every synthesized template.
#
# Two variants are synthesized: cdk.json's defaults (certificate ARN, x86_64) and a custom domain
# with a DNS-validated certificate on Graviton, so the optional resources get linted too.
# The proxy binary is a stand-in file unless PLANB_PROXY_BINARY names a real one: the gate checks
# the template, not the binary, and must not need the musl build. Output goes to a temp dir.
# cfn-lint: $CFN_LINT, else the repository's ../.venv/bin/cfn-lint (`make venv`), else PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CDK_DISABLE_CLI_TELEMETRY=true

binary="${PLANB_PROXY_BINARY:-}"
if [ -z "$binary" ]; then
  binary="$work/planb-proxy.stand-in"
  printf '#!/bin/sh\necho "stand-in for planb-proxy (infra gate), not the real binary" >&2\nexit 1\n' >"$binary"
fi

cfn_lint="${CFN_LINT:-}"
if [ -z "$cfn_lint" ]; then
  if [ -x ../.venv/bin/cfn-lint ]; then
    cfn_lint=../.venv/bin/cfn-lint
  elif command -v cfn-lint >/dev/null; then
    cfn_lint=cfn-lint
  else
    echo "cfn-lint not found: run \`make venv\` at the repository root, or set CFN_LINT" >&2
    exit 1
  fi
fi

synth() { # synth NAME [-c key=value ...]
  local name=$1
  shift
  echo "synth ($name) + cdk-nag"
  npx cdk synth --quiet --no-notices -c "planb:proxyBinary=$binary" "$@" -o "$work/$name" >"$work/$name.log" 2>&1 ||
    { cat "$work/$name.log" >&2; exit 1; }
  echo "cfn-lint ($name)"
  "$cfn_lint" "$work/$name"/*.template.json
}

synth default
synth custom-domain -c planb:certificateArn= -c planb:domainName=api.example.com \
  -c planb:hostedZoneId=Z0000000000000EXAMPLE -c planb:hostedZoneName=example.com \
  -c planb:architecture=arm64 -c planb:mfa=optional

echo "infra gates: synth, cdk-nag and cfn-lint clean"
