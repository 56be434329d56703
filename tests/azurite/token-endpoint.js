// A Microsoft Entra token endpoint for tests, on loopback over HTTPS: answers the client
// credentials grant of one application with a token Azurite's `--oauth basic` accepts
// (right audience and issuer, valid now; the signature is not checked there), and refuses
// any other secret as Entra does. It also plays a managed identity endpoint (the App Service
// protocol, at /msi/token): the identity header must be the same secret, and a client_id,
// when asked for, the application's.
//
// node token-endpoint.js <port> <cert.pem> <key.pem> <client id> <client secret>
"use strict";
const https = require("https");
const fs = require("fs");

const [port, cert, key, clientId, clientSecret] = process.argv.slice(2);

function base64url(value) {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

function token(tenant) {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url({ alg: "RS256", typ: "JWT" });
  const claims = base64url({
    aud: "https://storage.azure.com",
    iss: `https://sts.windows.net/${tenant}/`,
    tid: tenant,
    appid: clientId,
    nbf: now - 60,
    iat: now - 60,
    exp: now + 3600,
  });
  return `${header}.${claims}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk`;
}

https
  .createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const url = new URL(req.url, "https://127.0.0.1");
      if (url.pathname === "/msi/token") {
        const asked = url.searchParams.get("client_id");
        res.setHeader("content-type", "application/json");
        if (req.headers["x-identity-header"] !== clientSecret || (asked && asked !== clientId)) {
          res.statusCode = 400;
          res.end(JSON.stringify({ error: "invalid_request", error_description: "Unknown identity" }));
        } else {
          res.end(
            JSON.stringify({
              access_token: token("72f988bf-86f1-41af-91ab-2d7cd011db47"),
              expires_on: String(Math.floor(Date.now() / 1000) + 3600),
              resource: url.searchParams.get("resource"),
              token_type: "Bearer",
            })
          );
        }
        return;
      }
      const match = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(req.url);
      const form = new URLSearchParams(body);
      res.setHeader("content-type", "application/json");
      if (req.method !== "POST" || !match) {
        res.statusCode = 404;
        res.end(JSON.stringify({ error: "not_found" }));
      } else if (form.get("client_id") !== clientId || form.get("client_secret") !== clientSecret) {
        res.statusCode = 401;
        res.end(
          JSON.stringify({
            error: "invalid_client",
            error_description: "AADSTS7000215: Invalid client secret provided.",
          })
        );
      } else {
        res.end(
          JSON.stringify({
            token_type: "Bearer",
            expires_in: 3600,
            ext_expires_in: 3600,
            access_token: token(match[1]),
          })
        );
      }
    });
  })
  .listen(Number(port), "127.0.0.1");
