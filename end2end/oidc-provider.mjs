// A real OpenID Connect provider for the single sign-on tests: panva's certified oidc-provider with
// its built-in development login and consent pages, one confidential client and the users of a
// JSON file. Everything lives in memory and dies with the process.
//
//   node end2end/oidc-provider.mjs --port 0 --client-id seglab --client-secret SECRET \
//     --redirect-uri http://127.0.0.1:3010/auth/oidc/callback \
//     --post-logout-redirect-uri http://127.0.0.1:3010/login --users users.json
//
// users.json: {"alice": {"password": "…", "groups": ["radiology"], "email": "…", "name": "…"}}
// Prints `ready http://127.0.0.1:<port>` (the issuer) on stdout once it accepts connections.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import Provider from "oidc-provider";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    "client-id": { type: "string" },
    "client-secret": { type: "string" },
    "redirect-uri": { type: "string" },
    "post-logout-redirect-uri": { type: "string" },
    users: { type: "string" },
  },
});
for (const name of ["client-id", "client-secret", "redirect-uri", "post-logout-redirect-uri", "users"]) {
  if (!args[name]) throw new Error(`--${name} is required`);
}
const users = JSON.parse(readFileSync(args.users, "utf8"));

// The tests read stdout for the ready line alone; oidc-provider prints its "you SHOULD change
// this default" notices with console.info, so they go to stderr with its warnings.
console.info = console.error;

// A key made at start, so no private key is ever committed; the RP fetches it from jwks_uri.
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: "jwk" }), kid: "e2e-rs256", alg: "RS256", use: "sig" };

// The issuer has to carry the real port, which is only known once the socket is bound.
const server = createServer();
await new Promise((resolve) => server.listen(Number(args.port), "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: args["client-id"],
      client_secret: args["client-secret"],
      redirect_uris: [args["redirect-uri"]],
      post_logout_redirect_uris: [args["post-logout-redirect-uri"]],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      // oidc-provider takes the secret in the form body (client_secret_post) from such a client too.
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "RS256",
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString("base64url")] },
  // The default only asks public clients for PKCE; seglab must send it as a confidential client too.
  pkce: { required: () => true },
  // `groups` rides on `profile` so the usual scopes suffice, and has a scope of its own for RPs
  // that ask for it by name.
  claims: {
    openid: ["sub"],
    profile: ["preferred_username", "name", "groups"],
    email: ["email"],
    groups: ["groups"],
  },
  // By default, when an access token is issued too, scope claims are only served by userinfo;
  // seglab reads the user's name and groups from the ID token.
  conformIdTokenClaims: false,
  features: {
    // Its login and consent pages are what the browser tests click through.
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  // Only seglab's server talks to the token endpoint; no browser origin needs CORS.
  clientBasedCORS: () => false,
  async findAccount(ctx, sub) {
    const user = Object.hasOwn(users, sub) ? users[sub] : undefined;
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, preferred_username: sub, name: user.name, email: user.email, groups: user.groups ?? [] };
      },
    };
  },
});

provider.use(async (ctx, next) => {
  // The dev login page signs in any name with any password; check both against the users file.
  // oidc-provider takes an already parsed form body from ctx.request.body (it warns once).
  if (ctx.method === "POST" && /^\/interaction\/[^/]+$/.test(ctx.path) && ctx.is("application/x-www-form-urlencoded")) {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString("utf8")));
    ctx.request.body = form;
    const user = Object.hasOwn(users, form.login ?? "") ? users[form.login] : undefined;
    if (form.prompt === "login" && !(typeof user?.password === "string" && user.password === form.password)) {
      // Show the same login form again, as a failed sign-in does, with the reason above it.
      ctx.method = "GET";
      await next();
      if (ctx.status === 200) {
        ctx.status = 401;
        ctx.body = ctx.body.replace("<form", '<p class="login-error" role="alert">Invalid username or password.</p>\n<form');
      }
    } else {
      await next();
    }
  } else {
    await next();
  }
  // The built-in pages import a Google web font; the test browser has no internet, so drop it
  // rather than leave every page waiting on a request that cannot succeed.
  if (typeof ctx.body === "string" && ctx.response.is("html")) {
    ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com\/[^)]*\);?/g, "");
  }
});

server.on("request", provider.callback());
console.log(`ready ${issuer}`);
