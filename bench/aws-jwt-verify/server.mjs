// The verify benchmark's reference: GET /api/me as planb-backend serves it, with the
// access token verified by aws-jwt-verify, the verifier AWS recommends for Cognito.
// Environment: COGNITO_USER_POOL_ID, COGNITO_APP_CLIENT_ID, COGNITO_JWKS_URL, PORT, and
// WORKERS (default 1): that many processes share the port through node:cluster, as a
// Node service uses every vCPU of its task; with 1 the process serves on its own.
import cluster from "node:cluster";
import http from "node:http";
import { CognitoJwtVerifier } from "aws-jwt-verify";

const { COGNITO_USER_POOL_ID: userPoolId, COGNITO_APP_CLIENT_ID: clientId, COGNITO_JWKS_URL: jwksUrl, PORT } = process.env;
const workers = Number(process.env.WORKERS ?? "1");
if (!Number.isInteger(workers) || workers < 1) {
  console.error(`server.mjs: WORKERS=${process.env.WORKERS} is not a whole number of at least 1`);
  process.exit(2);
}

function send(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function serve() {
  const verifier = CognitoJwtVerifier.create({ userPoolId, tokenUse: "access", clientId });
  // The verifier derives the JWKS URL from the pool id (AWS's); the local pool's JWKS is loaded from its own URL once.
  verifier.cacheJwks(await (await fetch(jwksUrl)).json());
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
}

if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i++) cluster.fork();
  // A worker that dies takes the benchmark's figure with it: stop, so the harness sees it.
  cluster.on("exit", (w, code) => {
    console.error(`server.mjs: worker ${w.process.pid} exited with ${code}`);
    process.exit(1);
  });
} else {
  await serve();
}
