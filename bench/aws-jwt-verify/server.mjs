// The verify benchmark's reference: GET /api/me as planb-backend serves it, with the
// access token verified by aws-jwt-verify, the verifier AWS recommends for Cognito.
// Environment: COGNITO_USER_POOL_ID, COGNITO_APP_CLIENT_ID, COGNITO_JWKS_URL, PORT.
import http from "node:http";
import { CognitoJwtVerifier } from "aws-jwt-verify";

const { COGNITO_USER_POOL_ID: userPoolId, COGNITO_APP_CLIENT_ID: clientId, COGNITO_JWKS_URL: jwksUrl, PORT } = process.env;
const verifier = CognitoJwtVerifier.create({ userPoolId, tokenUse: "access", clientId });
// The verifier derives the JWKS URL from the pool id (AWS's); the local pool's JWKS is loaded from its own URL once.
verifier.cacheJwks(await (await fetch(jwksUrl)).json());

function send(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

http
  .createServer(async (req, res) => {
    if (req.url === "/health") return send(res, 200, { status: "ok" });
    if (req.url !== "/api/me") return send(res, 404, { error: "not_found" });
    try {
      const c = await verifier.verify(req.headers["x-amzn-oidc-accesstoken"] ?? "");
      send(res, 200, {
        sub: c.sub, username: c.username, client_id: c.client_id, scope: c.scope,
        groups: c["cognito:groups"] ?? [], exp: c.exp,
      });
    } catch (e) {
      send(res, 401, { error: "invalid_token", message: String(e.message) });
    }
  })
  .listen(Number(PORT), "127.0.0.1");
