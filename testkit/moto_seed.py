#!/usr/bin/env python3
"""Seed moto's server the way a deploy seeds AWS, with real boto3 calls.

  moto_seed.py cognito --endpoint URL [--region R] [--user NAME] [--group G ...]
      creates a user pool, an app client (admin auth flow), a user with a
      permanent password, puts the user in each group, signs in with
      AdminInitiateAuth and prints JSON: pool_id, client_id, region, username,
      password, sub, access_token, id_token, issuer, jwks_url.
      --pool-id/--client-id reuse an existing pool and client (another user).
      --callback-url/--logout-url make the new app client the ALB's: a secret,
      the authorization code grant, those URLs (client_secret is printed too).
  moto_seed.py machine-client --endpoint URL --pool-id ID [--scope NAME ...]
      creates the resource server `planb` with the scopes (default: read) and
      an app client with a secret allowed the client-credentials grant for
      them; prints JSON: client_id, client_secret, scopes.
  moto_seed.py ssm-put --endpoint URL --name NAME --value VALUE [--region R]
      puts (overwrites) a String parameter and prints JSON {name, value, version}.
  moto_seed.py notes-table --endpoint URL --name TABLE [--region R]
      creates the notes table as infra does (partition key owner S, sort key
      note_id S, on demand) unless it exists; prints JSON {table}.
"""
import argparse
import json
import sys

import boto3

PASSWORD = "Planb-Passw0rd!"


def client(kind, args):
    return boto3.client(kind, endpoint_url=args.endpoint, region_name=args.region,
                        aws_access_key_id="test", aws_secret_access_key="test")


def cognito(args):
    idp = client("cognito-idp", args)
    pool = args.pool_id or idp.create_user_pool(PoolName="planb")["UserPool"]["Id"]
    secret = None
    if not args.client_id:
        made = idp.create_user_pool_client(
            UserPoolId=pool, ClientName="planb",
            ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            **alb_client(args))["UserPoolClient"]
        app, secret = made["ClientId"], made.get("ClientSecret")
    else:
        app = args.client_id
    idp.admin_create_user(UserPoolId=pool, Username=args.user, MessageAction="SUPPRESS")
    idp.admin_set_user_password(UserPoolId=pool, Username=args.user, Password=PASSWORD, Permanent=True)
    for group in args.group:
        try:
            idp.create_group(UserPoolId=pool, GroupName=group)
        except idp.exceptions.GroupExistsException:
            pass
        idp.admin_add_user_to_group(UserPoolId=pool, Username=args.user, GroupName=group)
    auth = idp.admin_initiate_auth(
        UserPoolId=pool, ClientId=app, AuthFlow="ADMIN_NO_SRP_AUTH",
        AuthParameters={"USERNAME": args.user, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    attrs = idp.admin_get_user(UserPoolId=pool, Username=args.user)["UserAttributes"]
    sub = next(a["Value"] for a in attrs if a["Name"] == "sub")
    endpoint = args.endpoint.rstrip("/")
    return {
        "pool_id": pool, "client_id": app, **({"client_secret": secret} if secret else {}), "region": args.region, "username": args.user,
        "password": PASSWORD, "sub": sub, "groups": args.group,
        "access_token": auth["AccessToken"], "id_token": auth["IdToken"],
        "issuer": f"https://cognito-idp.{args.region}.amazonaws.com/{pool}",
        "jwks_url": f"{endpoint}/{pool}/.well-known/jwks.json",
    }


def alb_client(args):
    """The app client settings ALB's authenticate-cognito needs, when its URLs are given."""
    if not args.callback_url:
        return {}
    return {"GenerateSecret": True, "AllowedOAuthFlows": ["code"], "AllowedOAuthFlowsUserPoolClient": True,
            "AllowedOAuthScopes": ["openid", "email", "profile"], "SupportedIdentityProviders": ["COGNITO"],
            "CallbackURLs": [args.callback_url], "LogoutURLs": [args.logout_url or args.callback_url]}


def machine_client(args):
    idp = client("cognito-idp", args)
    scopes = args.scope or ["read"]
    try:
        idp.create_resource_server(UserPoolId=args.pool_id, Identifier="planb", Name="planb",
                                   Scopes=[{"ScopeName": s, "ScopeDescription": s} for s in scopes])
    except idp.exceptions.ClientError as e:
        if "exists" not in str(e).lower():
            raise
    full = [f"planb/{s}" for s in scopes]
    made = idp.create_user_pool_client(
        UserPoolId=args.pool_id, ClientName="planb-machine", GenerateSecret=True,
        AllowedOAuthFlows=["client_credentials"], AllowedOAuthFlowsUserPoolClient=True,
        AllowedOAuthScopes=full)["UserPoolClient"]
    return {"client_id": made["ClientId"], "client_secret": made["ClientSecret"], "scopes": full}


def ssm_put(args):
    ssm = client("ssm", args)
    version = ssm.put_parameter(Name=args.name, Value=args.value, Type="String", Overwrite=True)["Version"]
    return {"name": args.name, "value": args.value, "version": version}


def notes_table(args):
    ddb = client("dynamodb", args)
    try:
        ddb.create_table(
            TableName=args.name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "owner", "KeyType": "HASH"},
                       {"AttributeName": "note_id", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "owner", "AttributeType": "S"},
                                  {"AttributeName": "note_id", "AttributeType": "S"}],
        )
    except ddb.exceptions.ResourceInUseException:
        pass
    ddb.get_waiter("table_exists").wait(TableName=args.name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return {"table": args.name}


COMMANDS = {"cognito": cognito, "ssm-put": ssm_put, "notes-table": notes_table,
            "machine-client": machine_client}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cognito")
    c.add_argument("--user", default="alice")
    c.add_argument("--group", action="append", default=[])
    c.add_argument("--pool-id")
    c.add_argument("--client-id")
    c.add_argument("--callback-url")
    c.add_argument("--logout-url")
    s = sub.add_parser("ssm-put")
    s.add_argument("--name", required=True)
    s.add_argument("--value", required=True)
    t = sub.add_parser("notes-table")
    t.add_argument("--name", required=True)
    m = sub.add_parser("machine-client")
    m.add_argument("--pool-id", required=True)
    m.add_argument("--scope", action="append", default=[])
    for p in (c, s, t, m):
        p.add_argument("--endpoint", required=True)
        p.add_argument("--region", default="ap-northeast-1")
    args = ap.parse_args()
    json.dump(COMMANDS[args.cmd](args), sys.stdout)
    print()


if __name__ == "__main__":
    main()
