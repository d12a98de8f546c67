#!/usr/bin/env bash
# Post-deploy smoke test of a deployed Plan B stack:
#   1. ALB1 answers an anonymous page request with a 302 to the stack's Cognito hosted UI, an
#      anonymous API call with its own 401, and /logout by the backend's 302 to Cognito's /logout;
#   2. ALB1 refuses /metrics and /ready itself (404, before any login);
#   3. planb-proxy is active on every in-service proxy instance (SSM Run Command).
#
# Usage: scripts/smoke.sh URL [STACK]
#   URL    the stack output Url, e.g. https://api.example.com/
#   STACK  the CloudFormation stack (default: PlanB), for the Cognito domain and the proxy group
# Needs curl, the AWS CLI v2 with credentials for the stack's account, and its region in
# AWS_REGION (or the CLI's config). Exits non-zero naming the first check that failed.
set -euo pipefail

usage() { echo "usage: $0 URL [STACK]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
url=${1%/}
stack=${2:-PlanB}
case "$url" in https://*) ;; *) echo "smoke: URL must start with https://, got '$url'" >&2; exit 2 ;; esac

fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
ok() { echo "smoke: ok: $*"; }

output() { # output KEY: one output of the stack
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue | [0]" --output text
}

# status_and_location PATH: "<status> <Location header or ->" of an anonymous GET, no redirects.
status_and_location() {
  curl -sS -o /dev/null --max-time 15 -w '%{http_code} %{redirect_url}' "$url$1"
}

# 1. The login redirect goes to this stack's Cognito domain.
cognito_domain=$(output CognitoDomain)
[ -n "$cognito_domain" ] && [ "$cognito_domain" != None ] || fail "stack $stack has no CognitoDomain output"
read -r status location < <(status_and_location /)
[ "$status" = 302 ] || fail "GET $url/ answered $status, expected 302 to the login"
case "$location" in
  "https://$cognito_domain/"*) ok "GET / -> 302 to https://$cognito_domain/..." ;;
  *) fail "GET $url/ redirects to '$location', not to https://$cognito_domain/" ;;
esac
# The API answers 401 without a session (a redirect is nothing fetch() can follow).
read -r status _ < <(status_and_location /api/me)
[ "$status" = 401 ] || fail "GET $url/api/me answered $status, expected ALB1's 401"
ok "GET /api/me -> 401 from ALB1"
# Sign-out needs no session: the backend sends the browser to Cognito's /logout.
read -r status location < <(status_and_location /logout)
case "$status $location" in
  "302 https://$cognito_domain/logout"*) ok "GET /logout -> 302 to https://$cognito_domain/logout..." ;;
  *) fail "GET $url/logout answered '$status $location', expected 302 to https://$cognito_domain/logout" ;;
esac

# 2. The backend's operational endpoints are refused at the edge, login or not.
for path in /metrics /ready; do
  read -r status _ < <(status_and_location "$path")
  [ "$status" = 404 ] || fail "GET $url$path answered $status, expected ALB1's own 404"
  ok "GET $path -> 404 from ALB1"
done

# 3. The proxy service on each in-service instance of the proxy Auto Scaling group.
asg=$(output ProxyAutoScalingGroupName)
mapfile -t instances < <(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$asg" \
  --query "AutoScalingGroups[0].Instances[?LifecycleState=='InService'].InstanceId" --output text | tr '\t' '\n' | grep .)
((${#instances[@]})) || fail "no in-service instance in $asg"
command_id=$(aws ssm send-command --document-name AWS-RunShellScript --instance-ids "${instances[@]}" \
  --comment "planb smoke: is planb-proxy active" \
  --parameters 'commands=["systemctl is-active planb-proxy.service"]' \
  --query Command.CommandId --output text)
for instance in "${instances[@]}"; do
  # `wait` polls until the invocation ends; it fails for a failed one, which the status says.
  aws ssm wait command-executed --command-id "$command_id" --instance-id "$instance" 2>/dev/null || true
  result=$(aws ssm get-command-invocation --command-id "$command_id" --instance-id "$instance" \
    --query '[Status, StandardOutputContent]' --output text)
  read -r status state <<<"$result"
  [ "$status" = Success ] && [ "$state" = active ] || fail "planb-proxy on $instance: $result"
  ok "planb-proxy active on $instance"
done

echo "smoke: all checks passed for $url"
