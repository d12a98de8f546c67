"""ALB1's description (infra/alb1.json, the file the CDK app reads too) and ALB's rule matching.

The listener's rules are evaluated as the ELB user guide's "Listener rules" and "Rule
condition types" pages describe: in priority order, lowest number first; the first rule
whose every condition matches takes the request; none: the default action. Path patterns
are case-sensitive, header names and values are not; `*` matches any run of characters and
`?` one character.
"""
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC_FILE = os.path.join(ROOT, "infra", "alb1.json")


def load(path=SPEC_FILE):
    """The description as a dict (see infra/lib/alb1-spec.ts for its shape)."""
    with open(path) as f:
        return json.load(f)


def wildcard(pattern, value, case_insensitive):
    """ALB's wildcard match: `*` any run of characters, `?` one character, the rest literal."""
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(body, value, re.S | (re.I if case_insensitive else 0)) is not None


def matches(conditions, method, path, headers):
    """Whether a request meets every condition of a rule (`headers`: a case-insensitive mapping)."""
    if "methods" in conditions and method not in conditions["methods"]:
        return False
    if "paths" in conditions and not any(wildcard(p, path, False) for p in conditions["paths"]):
        return False
    header = conditions.get("header")
    if header:
        value = headers.get(header["name"])
        if value is None or not any(wildcard(p, value, True) for p in header["values"]):
            return False
    return True


def select(spec, method, path, headers):
    """(rule id, action) of the rule that takes the request; ("default", action) when none does."""
    for rule in sorted(spec["listener"]["rules"], key=lambda r: r["priority"]):
        if matches(rule["conditions"], method, path, headers):
            return rule["id"], rule["action"]
    return "default", spec["listener"]["defaultAction"]


def claim_matches(claim, value):
    """ALB's JWT validation of one additional claim, per the API reference's
    JwtValidationActionAdditionalClaim and the user guide's "Verify JWTs using an Application
    Load Balancer": `single-string` is one text value, `space-separated-values` several
    separated by spaces, `string-array` an array of text values. The documents do not say
    whether several configured values mean any or all of them; this takes any (the file
    configures one value per claim)."""
    wanted = claim["values"]
    fmt = claim["format"]
    if fmt == "single-string":
        return isinstance(value, str) and value in wanted
    if fmt == "space-separated-values":
        return isinstance(value, str) and any(w in value.split(" ") for w in wanted)
    if fmt == "string-array":
        return isinstance(value, list) and all(isinstance(v, str) for v in value) and any(w in value for w in wanted)
    raise ValueError(f"unknown claim format {fmt!r}")
