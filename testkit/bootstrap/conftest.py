"""Fixtures of the bootstrap test (see README.md): the synthesized template, moto's server with
the stack's S3 asset, SSM parameter and ALB1 target group, the IMDSv2 and ALB2 stand-ins, and one
container boot per test. Runs inside the network namespace `run.sh` creates."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import template as tpl  # noqa: E402
from container import Container  # noqa: E402
from standins import Alb2, Imds  # noqa: E402

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
MOTO_PORT = 22080
MOTO = f"http://127.0.0.1:{MOTO_PORT}"
ROLE = "planb-proxy-instance-role"
# ALB2's DNS name as the parameter holds it; the image's /etc/hosts points it at the ALB2 stand-in.
ALB2_NAME = "internal-PlanB-Alb2-1234567890.eu-west-1.elb.amazonaws.com"
REPO = tpl.REPO
LOGS = Path(os.environ.get("PLANB_BOOT_LOGS", REPO / "target" / "test-logs" / "bootstrap"))


def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the item, so a boot's teardown knows whether the test failed."""
    if call.when == "call":
        item.rep_call_failed = call.excinfo is not None


@pytest.fixture(scope="session")
def binary() -> Path:
    path = Path(os.environ.get("PLANB_BOOT_PROXY", REPO / "target/x86_64-unknown-linux-musl/release/planb-proxy"))
    if not path.is_file():
        pytest.fail(f"{path} is missing: `make test-bootstrap` builds the x86_64 musl proxy")
    problem = static_x86_64_problem(path.read_bytes()[:4096])
    if problem:
        pytest.fail(f"{path} is not the x86_64 musl build the test uses: {problem}")
    return path.resolve()


def static_x86_64_problem(head: bytes) -> str | None:
    """Why an ELF head is not a static x86_64 executable (no PT_INTERP), or None."""
    if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return "not a 64-bit little-endian ELF"
    if int.from_bytes(head[18:20], "little") != 62:
        return "not x86_64 (e_machine is not EM_X86_64)"
    phoff = int.from_bytes(head[32:40], "little")
    phentsize = int.from_bytes(head[54:56], "little")
    phnum = int.from_bytes(head[56:58], "little")
    for i in range(phnum):
        at = phoff + i * phentsize
        if int.from_bytes(head[at : at + 4], "little") == 3:  # PT_INTERP: dynamically linked
            return "dynamically linked (it has an ELF interpreter)"
    return None


@pytest.fixture(scope="session")
def rootfs() -> Path:
    path = os.environ.get("PLANB_BOOT_ROOTFS")
    if not path or not Path(path, ".planb-complete").is_file():
        pytest.fail("PLANB_BOOT_ROOTFS is not a finished image: run testkit/bootstrap/run.sh")
    return Path(path)


@dataclass
class Stack:
    template: Path
    user_data: dict
    asset: tpl.Asset
    parameter: str
    asg: str
    name: str


@pytest.fixture(scope="session")
def stack(binary, tmp_path_factory) -> Stack:
    """`cdk synth` now, with the binary under test as the proxy asset."""
    template = tpl.synth(binary, tmp_path_factory.mktemp("synth"), REGION)
    user_data = tpl.launch_template_user_data(template)
    raw = "".join(p for p in user_data["Fn::Base64"]["Fn::Join"][1] if isinstance(p, str))
    parameter = tpl.ssm_parameter_of(raw)
    resources = tpl.resources(template)
    names = [r["Properties"].get("Name") for r in resources.values() if r["Type"] == "AWS::SSM::Parameter"]
    assert parameter in names, f"proxy.yaml in user data reads {parameter}, the stack creates {names}"
    (asg,) = [k for k, r in resources.items() if r["Type"] == "AWS::AutoScaling::AutoScalingGroup"]
    name = template.name.removesuffix(".template.json")
    return Stack(template, user_data, tpl.binary_asset(template, binary, ACCOUNT), parameter, asg, name)


@pytest.fixture(scope="session")
def moto():
    """moto's server on loopback (in the namespace), until it answers."""
    moto_server = Path(sys.executable).with_name("moto_server")
    LOGS.mkdir(parents=True, exist_ok=True)
    log = (LOGS / "moto.log").open("wb")
    proc = subprocess.Popen([str(moto_server), "-H", "127.0.0.1", "-p", str(MOTO_PORT)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{MOTO}/moto-api/", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto's server did not answer on {MOTO} (log: {LOGS / 'moto.log'})")
            time.sleep(0.1)
    yield MOTO
    proc.terminate()
    proc.wait(timeout=10)


def client(service: str):
    return boto3.client(service, endpoint_url=MOTO, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")


@dataclass
class World:
    """The AWS side of one deploy: the instance, the stack's parameter, asset and ALB1 target group."""

    instance_id: str
    target_group_arn: str
    stack: Stack
    imds: Imds
    alb2: Alb2

    def put_asset(self, data: bytes) -> None:
        client("s3").put_object(Bucket=self.stack.asset.bucket, Key=self.stack.asset.key, Body=data)

    def put_parameter(self, value: str) -> None:
        client("ssm").put_parameter(Name=self.stack.parameter, Value=value, Type="String", Overwrite=True)

    def user_data(self) -> str:
        """User data as CloudFormation resolves it for this deploy."""
        refs = {}
        resources = tpl.resources(self.stack.template)
        for ref in tpl.referenced_ids(self.stack.user_data):
            resource = resources.get(ref, {})
            kind = resource.get("Type")
            if kind == "AWS::ElasticLoadBalancingV2::TargetGroup":
                refs[ref] = self.target_group_arn
            elif kind == "AWS::Logs::LogGroup":
                refs[ref] = f"/planb-boot/{ref}"
            elif kind == "AWS::SSM::Parameter" and isinstance(resource["Properties"].get("Name"), str):
                refs[ref] = resource["Properties"]["Name"]  # a parameter's Ref is its name
        pseudo = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": self.stack.name}
        return tpl.Resolver(pseudo, refs)(self.stack.user_data)


@pytest.fixture(scope="session")
def world(stack, moto) -> World:
    ec2 = client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.small")["Instances"][0]["InstanceId"]
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    elbv2 = client("elbv2")
    tg = elbv2.create_target_group(Name="planb-proxy-targets", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": instance_id, "Port": 8080}])
    client("s3").create_bucket(Bucket=stack.asset.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    try:
        imds = Imds(("169.254.169.254", 80), instance_id, REGION, ROLE)
    except OSError as e:
        pytest.fail(f"cannot serve IMDS on 169.254.169.254:80 ({e}): run the test through testkit/bootstrap/run.sh, which creates its network namespace")
    alb2 = Alb2(("127.0.0.1", 80))
    yield World(instance_id, tg, stack, imds, alb2)
    imds.close()
    alb2.close()


@pytest.fixture
def boot(request, world, rootfs):
    """Boots the image once with the current user data; saves its journal, prints it on failure."""
    booted: list[Container] = []

    def start() -> Container:
        name = f"planb-boot-{request.node.name.removeprefix('test_')}"[:60].replace("_", "-")
        files = {
            "/etc/planb-boot/aws-endpoint": f"{MOTO}\n",
            # The proxy's SDK finds moto the way the aws shim does; region and credentials come
            # from the IMDS stand-in, as on EC2.
            "/etc/systemd/system.conf.d/planb-boot.conf": f"[Manager]\nDefaultEnvironment=AWS_ENDPOINT_URL={MOTO}\n",
            "/etc/hosts": f"127.0.0.1 localhost planb-boot\n127.0.0.1 {ALB2_NAME}\n",
        }
        c = Container(rootfs, LOGS / name, name, world.user_data(), files)
        booted.append(c)
        return c

    yield start
    for c in booted:
        journal = c.journal("-b")
        (c.work / "journal.txt").write_text(journal)
        if getattr(request.node, "rep_call_failed", False):
            print(f"\n--- journal of {c.name} (also {c.work / 'journal.txt'}) ---\n{journal}")
            for calls in sorted(c.out.glob("*")):
                print(f"--- {calls.name} ---\n{calls.read_text(errors='replace')}")
        c.stop()


def sha256(data: bytes) -> str:
    """The SHA-256 of `data` in hex, as user data's check writes it."""
    return hashlib.sha256(data).hexdigest()
