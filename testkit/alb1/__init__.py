"""A test stand-in for ALB1, the internet-facing Application Load Balancer.

It plays, on loopback, the part AWS plays in front of planb-proxy: the
Cognito login (`authenticate-cognito`), the session cookie, the three
`x-amzn-oidc-*` headers with an ES256-signed `x-amzn-oidc-data`, the public
key endpoint that key is fetched from, JWT validation of bearer tokens, and
ALB1's listener rules. moto has Cognito's APIs but no hosted UI or OAuth
endpoints, so the Cognito domain is stood in for here as well, on its own
port, backed by moto's user pool. Test tooling only: it is never shipped.
"""
