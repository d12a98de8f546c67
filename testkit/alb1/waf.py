"""WAF's body rules in front of the stand-in, from infra/alb1.json.

What runs on AWS (infra/lib/constructs/web-acl.ts): the managed groups' body rules count
and label; the rule named `outsideBodyRoutesRule` blocks a request carrying any of those
labels unless its path is a body route; each body route's `overLimitRule` blocks a declared
`Content-Length` above its `maxContentLength`. A blocked request gets WAF's default Block
answer, 403 (AWS WAF Developer Guide, "Rule action": Block "responds with HTTP 403
(Forbidden)" unless a custom response is set; the ACL sets none).

The managed rules' exact patterns are AWS's and unpublished. The detectors below are a
test double for them, named so: each matches the forms its rule's description in the AWS
WAF Developer Guide ("Baseline rule groups": the core rule set, known bad inputs) gives as
examples, so a body with one of those is blocked locally as on AWS; AWS's rules match more
than these. WAF inspects at most the first 8 KB of an Application Load Balancer request's
body (the guide's body inspection size limit for ALB).

Not applied here: the rules that inspect other parts (IP reputation, user agents, query
strings, cookies, URI paths) and the rate limit.
"""
import re

# WAF inspects this much of an ALB request's body; SizeRestrictions_BODY matches bodies above it.
INSPECTION_LIMIT = 8192

# Each managed body rule of alb1.json: the test double for what it is documented to match.
DETECTORS = {
    # CRS: "Verifies that the request body size is at most 8 KB (8,192 bytes)."
    "SizeRestrictions_BODY": lambda body: len(body) > INSPECTION_LIMIT,
    # CRS: "common cross-site scripting (XSS) patterns", e.g. <script>alert("hello")</script>.
    "CrossSiteScripting_BODY": re.compile(
        rb"<\s*script|javascript\s*:|<[^>]*\bon[a-z]+\s*=|<\s*(iframe|object|embed|svg)\b", re.I).search,
    # CRS: "Local File Inclusion (LFI) exploits ... path traversal attempts using techniques like ../../".
    "GenericLFI_BODY": re.compile(rb"\.\./|\.\.\\").search,
    # CRS: "Remote File Inclusion (RFI) ... URLs that contain IPv4 addresses", http(s)/ftp(s)/file schemes.
    "GenericRFI_BODY": re.compile(rb"(https?|ftps?|file)://\d{1,3}(\.\d{1,3}){3}", re.I).search,
    # CRS: "attempts to exfiltrate Amazon EC2 metadata", i.e. the instance metadata address.
    "EC2MetaDataSSRF_BODY": re.compile(rb"169\.254\.169\.254|\[?fd00:ec2::254\]?", re.I).search,
    # Known bad inputs: "the Log4j vulnerability", the ${jndi: lookup.
    "Log4JRCE_BODY": re.compile(rb"\$\{\s*jndi\s*:", re.I).search,
    # Known bad inputs: "Java deserialization remote command execution", serialized objects
    # (base64 rO0AB, hex aced0005) and java.lang.Runtime.
    "JavaDeserializationRCE_BODY": re.compile(rb"rO0AB|aced0005|java\.lang\.Runtime", re.I).search,
}


def on_route(route, path):
    """Whether `path` is the body route's (exactly its path, or below its prefix)."""
    return path == route["paths"]["exactly"] or path.startswith(route["paths"]["startsWith"])


def declared_above(headers, limit):
    """Whether the request declares a `Content-Length` above `limit` (WAF compares the header's text)."""
    value = headers.get("Content-Length", "")
    return value.isdigit() and int(value) > limit


class Waf:
    """The web ACL's body rules for one description."""

    def __init__(self, spec):
        waf = spec["waf"]
        self.body_rules = [rule for group in waf["managedRuleGroups"] for rule in group.get("bodyRules", [])]
        missing = [rule for rule in self.body_rules if rule not in DETECTORS]
        if missing:
            raise ValueError(f"alb1.json names body rules the stand-in cannot apply: {', '.join(missing)}")
        self.outside_rule = waf["outsideBodyRoutesRule"]
        self.routes = waf["bodyRoutes"]

    def labels(self, body):
        """The managed body rules a body matches (within WAF's inspection limit)."""
        inspected = body[:INSPECTION_LIMIT]
        return [rule for rule in self.body_rules
                if DETECTORS[rule](body if rule == "SizeRestrictions_BODY" else inspected)]

    def verdict(self, path, headers, body):
        """(the blocking rule, the labels) for a request WAF blocks; None for one it lets through."""
        route = next((r for r in self.routes if on_route(r, path)), None)
        labels = self.labels(body)
        if labels and route is None:
            return self.outside_rule, labels
        if route is not None and declared_above(headers, route["maxContentLength"]):
            return route["overLimitRule"], labels
        return None
