#!/usr/bin/env bash
# Gate: `cdk synth` (cdk-nag's AwsSolutions pack runs inside it and fails it on any finding that
# is not acknowledged with a reason), then cfn-lint on every synthesized template.
#
# Three variants are synthesized: cdk.json's defaults (example certificate ARN, Graviton), a
# custom domain with a DNS-validated certificate on x86_64 with every optional input (alarm e-mail,
# GitHub deploy role, traces with their collector sidecar), so the optional resources get linted too, and the small profile with an
# existing GitHub OIDC provider. Both pass
# planb:allowPlaceholders=true: cdk.json's example certificate is refused otherwise.
# The proxy binary is a stand-in (test/fixtures: an ELF header for the right CPU) unless
# PLANB_PROXY_BINARY names a real one: the gate checks the template, not the binary, and must not
# need the musl build. Output goes to a temp dir.
# cfn-lint: $CFN_LINT, else the repository's ../.venv/bin/cfn-lint (`make venv`), else PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CDK_DISABLE_CLI_TELEMETRY=true

binary_arm64="${PLANB_PROXY_BINARY:-test/fixtures/elf-header-aarch64.bin}"
binary_x86_64=test/fixtures/elf-header-x86_64.bin

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
  npx cdk synth --quiet --no-notices -c planb:allowPlaceholders=true "$@" -o "$work/$name" >"$work/$name.log" 2>&1 ||
    { cat "$work/$name.log" >&2; exit 1; }
  echo "cfn-lint ($name)"
  "$cfn_lint" "$work/$name"/*.template.json
}

synth default -c "planb:proxyBinary=$binary_arm64"
synth custom-domain -c planb:certificateArn= -c planb:domainName=api.example.com \
  -c planb:hostedZoneId=Z0000000000000EXAMPLE -c planb:hostedZoneName=example.com \
  -c planb:architecture=x86_64 -c "planb:proxyBinary=$binary_x86_64" -c planb:mfa=optional \
  -c planb:alarmEmail=ops@example.com -c planb:githubRepo=example/planb -c planb:traceSampleRatio=0.05
synth small -c planb:profile=small -c "planb:proxyBinary=$binary_arm64" -c planb:githubRepo=example/planb \
  -c planb:githubOidcProviderArn=arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com

echo "infra gates: synth, cdk-nag and cfn-lint clean"
