"""The proxy fleet's user data and binary asset, read from a freshly synthesized CloudFormation
template (never a checked-in copy): what an instance of the fleet would run and download.

The launch template's `UserData` is `Fn::Base64` of an `Fn::Join` holding the intrinsics
CloudFormation resolves at deploy time (`Ref`s, `Fn::Sub` on pseudo parameters). They are resolved
here the way CloudFormation would, from the values of the test's own stand-ins: a resource this
module has no value for is an error naming it, so a new reference in user data fails loudly
instead of reaching the instance as a JSON blob.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"


class TemplateError(Exception):
    """The template does not have the shape the fleet's user data is expected in."""


def synth(binary: Path, out: Path, region: str) -> Path:
    """`cdk synth` of the app (offline, placeholders allowed) for x86_64 with `binary` as the
    proxy asset, into `out`. Returns the stack's template file."""
    cmd = [
        "npx", "cdk", "synth", "--quiet", "--no-notices",
        "-c", "planb:allowPlaceholders=true",
        "-c", f"planb:region={region}",
        "-c", "planb:architecture=x86_64",
        "-c", f"planb:proxyBinary={binary}",
        "-o", str(out),
    ]
    done = subprocess.run(
        cmd, cwd=INFRA, capture_output=True, text=True,
        env={**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true"},
    )
    if done.returncode != 0:
        raise TemplateError(f"cdk synth failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    templates = sorted(out.glob("*.template.json"))
    if len(templates) != 1:
        raise TemplateError(f"expected one stack template in {out}, found {templates}")
    return templates[0]


@dataclass(frozen=True)
class Asset:
    """A file asset as `cdk deploy` publishes it: the staged file and where it goes."""

    source: Path
    bucket: str
    key: str


def binary_asset(template: Path, binary: Path, account: str) -> Asset:
    """The file asset synth staged from `binary` (matched by content) and its S3 destination."""
    manifest = json.loads(template.with_name(template.name.replace(".template.json", ".assets.json")).read_text())
    want = hashlib.sha256(binary.read_bytes()).hexdigest()
    for asset in manifest.get("files", {}).values():
        source = template.parent / asset["source"]["path"]
        if asset["source"].get("packaging") != "file" or not source.is_file():
            continue
        if hashlib.sha256(source.read_bytes()).hexdigest() != want:
            continue
        (dest,) = asset["destinations"].values()
        bucket = dest["bucketName"].replace("${AWS::AccountId}", account).replace("${AWS::Region}", dest["region"])
        return Asset(source=source, bucket=bucket, key=dest["objectKey"])
    raise TemplateError(f"no file asset in {template.parent} has the content of {binary}")


def resources(template: Path) -> dict:
    """The template's resources by logical id."""
    return json.loads(template.read_text())["Resources"]


def launch_template_user_data(template: Path) -> dict:
    """The one launch template's `UserData` (still holding its intrinsics)."""
    found = [
        r["Properties"]["LaunchTemplateData"]["UserData"]
        for r in resources(template).values()
        if r["Type"] == "AWS::EC2::LaunchTemplate"
    ]
    if len(found) != 1:
        raise TemplateError(f"expected one AWS::EC2::LaunchTemplate with UserData, found {len(found)}")
    return found[0]


class Resolver:
    """Resolves intrinsics as CloudFormation would, from pseudo parameters and `refs`
    (logical id -> the value `Ref` gives)."""

    def __init__(self, pseudo: dict[str, str], refs: dict[str, str]):
        self.pseudo = pseudo
        self.refs = refs

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"user data references {name}, which the bootstrap test has no value for")

    def __call__(self, node) -> str:
        if isinstance(node, str):
            return node
        if not isinstance(node, dict) or len(node) != 1:
            raise TemplateError(f"unexpected node in user data: {json.dumps(node)[:200]}")
        ((fn, arg),) = node.items()
        if fn == "Fn::Base64":
            return self(arg)
        if fn == "Fn::Join":
            sep, parts = arg
            return sep.join(self(p) for p in parts)
        if fn == "Ref":
            return self.ref(arg)
        if fn == "Fn::Sub" and isinstance(arg, str):
            return re.sub(r"\$\{([^}!]+)\}", lambda m: self.ref(m.group(1)), arg)
        raise TemplateError(f"user data uses {fn}, which the bootstrap test does not resolve: {json.dumps(node)[:200]}")


def referenced_ids(node) -> set[str]:
    """Logical ids (and pseudo parameters) `node` refers to through `Ref` or `Fn::Sub`."""
    if isinstance(node, list):
        return set().union(*(referenced_ids(n) for n in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found: set[str] = set()
    for fn, arg in node.items():
        if fn == "Ref" and isinstance(arg, str):
            found.add(arg)
        elif fn == "Fn::Sub" and isinstance(arg, str):
            found.update(re.findall(r"\$\{([^}!]+)\}", arg))
        else:
            found |= referenced_ids(arg)
    return found


def ssm_parameter_of(script: str) -> str:
    """The `ssm_parameter:` proxy.yaml (as user data writes it) names."""
    found = re.findall(r"^\s*ssm_parameter:\s*(\S+)", script, re.M)
    if len(found) != 1:
        raise TemplateError(f"expected one ssm_parameter line in user data's proxy.yaml, found {found}")
    return found[0]
