"""The ALB1 test stand-in's command line.

  python -m alb1 serve ...     the listener, the Cognito domain and the public key endpoint
  python -m alb1 login ...     sign in through the listener's form; prints the session's Cookie header
  python -m alb1 token ...     a machine client's access token (client credentials)
  python -m alb1 headers ...   the three x-amzn-oidc-* headers for a user, signed with the
                               stand-in's key (to load-test the proxy directly, as ALB1 calls it)
"""
import argparse
import asyncio
import json
import signal
import sys

from aiohttp import web

from .client import machine_token, session_cookie, sign_in
from .cognito import CognitoDomain
from .listener import Listener, describe, keys_app
from .oidc_data import DataSigner, load_or_create_key, public_pem
from .spec import SPEC_FILE
from .spec import load as load_spec


def log(line):
    """One line of the stand-in's log (stdout, flushed: the stack keeps it in alb1.log)."""
    print(f"alb1: {line}", flush=True)


def host_port(text):
    """`host:port` as a (host, port) pair, for argparse."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got '{text}'")
    return host, int(port)


def seconds(text):
    """A positive number of seconds, for argparse."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got '{text}'")
    return int(text)


async def serve(cfg):
    """The listener, the Cognito domain and the key endpoint, until SIGTERM or SIGINT."""
    key = load_or_create_key(cfg.key_file)
    signer = DataSigner(key, cfg.kid, cfg.alb_arn)
    try:
        description = load_spec(cfg.spec)
    except (OSError, ValueError) as e:
        sys.exit(f"alb1: cannot read ALB1's description {cfg.spec}: {e}")
    if cfg.session_timeout is None:
        cfg.session_timeout = description["listener"]["sessionTimeoutSeconds"]
    apps = [(Listener(cfg, signer, log, description).app(), cfg.listen),
            (CognitoDomain(cfg.moto, cfg.region, cfg.pool_id).app(), cfg.cognito_listen),
            (keys_app(cfg.kid, public_pem(key)), cfg.keys_listen)]
    runners = []
    for app, (host, port) in apps:
        # ALB's own limits: 16 KB for the request line and for any one header (a sharded Cookie).
        runner = web.AppRunner(app, access_log=None,
                               handler_args={"max_line_size": 16384, "max_field_size": 16384})
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
    log(f"serving {describe(cfg)}")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


def headers(args):
    """Prints the x-amzn-oidc-* headers for the user in `--user-json`."""
    user = json.load(open(args.user_json))
    signer = DataSigner(load_or_create_key(args.key_file), args.kid, args.alb_arn)
    claims = {"sub": user["sub"], "username": user["username"]}
    for name, value in signer.headers(user["access_token"], claims, user["issuer"], user["client_id"],
                                 ttl=args.ttl).items():
        print(f"{name}: {value}")


def parser():
    """The command line: serve, login, token, headers."""
    ap = argparse.ArgumentParser(prog="alb1", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the stand-in")
    s.add_argument("--listen", type=host_port, required=True, help="the listener, host:port")
    s.add_argument("--target", required=True, help="planb-proxy's URL")
    s.add_argument("--cognito-listen", type=host_port, required=True)
    s.add_argument("--cognito-url", required=True, help="the Cognito domain's URL for the stand-in's own calls")
    s.add_argument("--cognito-public-url", required=True, help="the Cognito domain's URL browsers are sent to")
    s.add_argument("--keys-listen", type=host_port, required=True, help="the public key endpoint, host:port")
    s.add_argument("--moto", required=True, help="moto's server URL")
    s.add_argument("--region", required=True)
    s.add_argument("--pool-id", required=True)
    s.add_argument("--client-id", required=True, help="the ALB's app client (code grant, with a secret)")
    s.add_argument("--client-secret", required=True)
    s.add_argument("--jwks-url", required=True, help="the pool's JWKS (moto's), for bearer tokens")
    s.add_argument("--alb-arn", required=True, help="the signer written into x-amzn-oidc-data")
    s.add_argument("--kid", required=True, help="the signing key's id (a UUID)")
    s.add_argument("--key-file", help="the P-256 key's PEM; made when absent")
    s.add_argument("--spec", default=SPEC_FILE, help="ALB1's description (default: infra/alb1.json)")
    s.add_argument("--session-timeout", type=seconds,
                   help="the session's lifetime in seconds (default: the description's, as infra deploys it; "
                        "tests shorten it to see a session expire)")
    li = sub.add_parser("login", help="sign in through the form; print the Cookie header")
    li.add_argument("--alb", required=True)
    li.add_argument("--user", required=True)
    li.add_argument("--password", required=True)
    t = sub.add_parser("token", help="a client-credentials access token")
    t.add_argument("--cognito-url", required=True)
    t.add_argument("--client-id", required=True)
    t.add_argument("--client-secret", required=True)
    t.add_argument("--scope")
    h = sub.add_parser("headers", help="x-amzn-oidc-* headers for a user, one 'name: value' a line")
    h.add_argument("--user-json", required=True, help="what moto_seed.py cognito printed for the user")
    h.add_argument("--key-file", required=True)
    h.add_argument("--kid", required=True)
    h.add_argument("--alb-arn", required=True)
    h.add_argument("--ttl", type=int, default=3600, help="seconds the data token is valid")
    return ap


def main():
    """Runs the command the arguments name."""
    args = parser().parse_args()
    if args.cmd == "serve":
        args.listen_port = args.listen[1]
        args.issuer = f"https://cognito-idp.{args.region}.amazonaws.com/{args.pool_id}"
        asyncio.run(serve(args))
    elif args.cmd == "login":
        print(session_cookie(sign_in(args.alb, args.user, args.password)))
    elif args.cmd == "token":
        print(machine_token(args.cognito_url, args.client_id, args.client_secret, args.scope))
    else:
        headers(args)


if __name__ == "__main__":
    sys.exit(main())
