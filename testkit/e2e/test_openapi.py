"""The backend's OpenAPI document checked by a tool no one here wrote: schemathesis.

It reads /openapi.json from the running backend (the local stack of scripts/stack.sh,
notes on moto's DynamoDB), generates requests for every operation — valid ones, edge
cases and invalid ones — with a signed-in user's ALB headers, and checks every answer:
no 5xx, and each status, content type, header and body as the document says.
"""
import os
import subprocess

from test_stack import alb_headers, stack  # noqa: F401  (stack is the module's fixture)

VENV = os.path.join(os.path.dirname(__file__), "..", "..", ".venv")
CHECKS = ",".join(["not_a_server_error", "status_code_conformance", "content_type_conformance",
                   "response_headers_conformance", "response_schema_conformance"])


def test_every_answer_matches_the_document_and_none_is_a_5xx(stack, tmp_path):
    # ALB1's three headers for alice, valid two minutes: longer than the run.
    headers = [arg for name, value in alb_headers(stack, stack["alice"]).items()
               for arg in ("-H", f"{name}: {value}")]
    run = subprocess.run(
        [os.path.join(VENV, "bin", "schemathesis"), "run", f"{stack['backend']}/openapi.json",
         "--checks", CHECKS, "--max-examples", "10", "--phases", "examples,coverage,fuzzing",
         "--generation-with-security-parameters", "false", "--generation-deterministic",
         # /logout answers with a redirect to Cognito's domain: nothing to follow here.
         "--exclude-path", "/logout", "--request-timeout", "10", *headers],
        capture_output=True, text=True, timeout=110, cwd=tmp_path)
    assert run.returncode == 0, f"schemathesis found problems:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
