#!/usr/bin/env bash
# The CDK context of a deploy from CI, one `planb:key=value` per line (deploy.yml passes each as
# `-c`), from the environment deploy.yml fills with the repository's variables:
#   AWS_REGION, GITHUB_REPOSITORY                        required
#   PLANB_CERTIFICATE_ARN                                an ACM certificate for ALB1, or empty with
#   PLANB_DOMAIN_NAME, PLANB_HOSTED_ZONE_ID, PLANB_HOSTED_ZONE_NAME   (a new DNS-validated one)
#   PLANB_ALARM_EMAIL, PLANB_PROFILE, PLANB_GITHUB_OIDC_PROVIDER_ARN  optional
# planb:certificateArn is always written, empty included: an empty value replaces cdk.json's
# example ARN, so a hosted-zone set-up gets its certificate made instead of stopping on the example.
# The values themselves are checked by the CDK app (lib/config.ts), which names the key at fault.
set -euo pipefail

fail() {
  echo "deploy-context: $*" >&2
  exit 1
}

emit() { # emit KEY VALUE
  case "$2" in *$'\n'*) fail "the value for planb:$1 has a line break" ;; esac
  printf 'planb:%s=%s\n' "$1" "$2"
}

optional() { # optional KEY VALUE: only when VALUE is set
  [ -z "$2" ] || emit "$1" "$2"
}

[ -n "${AWS_REGION:-}" ] || fail "AWS_REGION is empty: set the repository variable AWS_REGION"
[ -n "${GITHUB_REPOSITORY:-}" ] || fail "GITHUB_REPOSITORY is empty (GitHub Actions sets it)"
if [ -n "${PLANB_HOSTED_ZONE_ID:-}" ] && [ -z "${PLANB_HOSTED_ZONE_NAME:-}" ]; then
  fail "PLANB_HOSTED_ZONE_ID is set but PLANB_HOSTED_ZONE_NAME is empty: set both repository variables"
fi

emit region "$AWS_REGION"
# The stack holds this workflow's own deploy role.
emit githubRepo "$GITHUB_REPOSITORY"
emit certificateArn "${PLANB_CERTIFICATE_ARN:-}"
optional domainName "${PLANB_DOMAIN_NAME:-}"
optional hostedZoneId "${PLANB_HOSTED_ZONE_ID:-}"
optional hostedZoneName "${PLANB_HOSTED_ZONE_NAME:-}"
optional alarmEmail "${PLANB_ALARM_EMAIL:-}"
optional profile "${PLANB_PROFILE:-}"
optional githubOidcProviderArn "${PLANB_GITHUB_OIDC_PROVIDER_ARN:-}"
