#!/usr/bin/env node
// A real third-party OpenID provider for realmgate's real-world test tier:
// npm `oidc-provider` (panva), configured for tests only, listening on loopback.
//
// CLI CONTRACT
//   node tests/node/provider.mjs [--host 127.0.0.1] [--port 0] [--stdin-lifeline]
//
//   --host H           loopback address to bind (default 127.0.0.1; env PROVIDER_HOST).
//                      Any 127.x.y.z works on Linux; a different one from the gateway's
//                      keeps the two sites' cookies apart in the browser.
//   --port N           port (default 0 = any free port; env PROVIDER_PORT).
//   --stdin-lifeline   exit when stdin reaches EOF, so a test that dies (and closes the
//                      pipe) never leaves the provider running. Use with stdin piped.
//
//   env OIDC_CLIENTS   REQUIRED. JSON: one client object or an array of them, in
//                      oidc-provider client metadata, e.g.
//                      {"client_id":"realmgate","client_secret":"s3cret-at-least-32-characters-long!",
//                       "redirect_uris":["http://127.0.0.1:8080/.auth/login/corp/callback"],
//                       "post_logout_redirect_uris":["http://127.0.0.1:8080/"],
//                       "token_endpoint_auth_method":"client_secret_basic"}
//                      Defaults filled in: grant_types [authorization_code, refresh_token],
//                      response_types [code]. `backchannel_logout_uri` is honoured.
//   env OIDC_USERS     optional JSON array of users replacing the default ones:
//                      [{"sub","email","name","groups":[...],"email_verified":true}]
//   env OIDC_TTL       optional seconds for ID and access tokens (default 3600), for
//                      refresh tests.
//
//   stdout             exactly one line `READY <issuer>` once listening, e.g.
//                      `READY http://127.0.0.1:41234` (discovery is at
//                      <issuer>/.well-known/openid-configuration). Nothing else.
//   stderr             provider errors (one line each), for test failure output.
//   exit               on SIGTERM/SIGINT (0), stdin EOF with --stdin-lifeline (0),
//                      bad configuration (2, with the reason on stderr).
//
// SIGN-IN
//   The provider's own login page (`GET /interaction/<uid>`) is a plain form, no script:
//   field `login` (labelled "Username or email", prefilled from `login_hint`), field
//   `password` (any value is accepted) and a "Sign in" submit button. The login is matched
//   against the users' email (case-insensitive) or sub; an unknown login signs in a user
//   with that sub and email and no groups. Consent is granted automatically for the
//   configured clients (first-party), so after the login form the browser goes straight
//   back to the client's redirect_uri.
//
// CLAIMS
//   ID token (and userinfo): sub, email, email_verified, name, preferred_username, and
//   `groups` (array of names) — groups come with the `openid` scope, as with Entra ID, so
//   they land in the ID token whatever the client asks for. `conformIdTokenClaims` is off
//   so scope claims go into the ID token even with response_type=code.
//
// TEST ONLY: the issuer is plain HTTP on loopback, signing keys are generated at start,
// cookie keys are fixed. Never use this configuration for anything else.

import http from 'node:http';
import { parseArgs } from 'node:util';

// stdout carries only the READY line: the library's notices go to stderr, and the
// development-only warnings this test configuration causes on purpose (in-memory
// storage, generated keys, Node.js 20) are dropped. Patched before the library loads,
// since it warns at import time.
const EXPECTED_WARNINGS = [/Unsupported runtime/, /in-memory adapter/, /development-only signing keys/];
const toStderr = (...parts) => process.stderr.write(`${parts.join(' ')}\n`);
console.log = toStderr;
console.info = toStderr;
console.warn = (...parts) => {
  if (!EXPECTED_WARNINGS.some((re) => re.test(parts.join(' ')))) toStderr(...parts);
};
const { default: Provider } = await import('oidc-provider');

const DEFAULT_USERS = [
  {
    sub: 'alice',
    email: 'alice@contoso.example',
    email_verified: true,
    name: 'Alice Anders',
    groups: ['HR Admins', 'Staff'],
  },
  {
    sub: 'bob',
    email: 'bob@contoso.example',
    email_verified: true,
    name: 'Bob Berg',
    groups: ['Staff'],
  },
  {
    sub: 'erin',
    email: 'erin@fabrikam.example',
    email_verified: false,
    name: 'Erin Ek',
    groups: [],
  },
];

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

function parseJsonEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    if (fallback === undefined) fail(`${name} is required (see the header of this file)`);
    return fallback;
  }
  try {
    return JSON.parse(raw);
  } catch (err) {
    return fail(`${name} is not valid JSON: ${err.message}`);
  }
}

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: process.env.PROVIDER_HOST || '127.0.0.1' },
    port: { type: 'string', default: process.env.PROVIDER_PORT || '0' },
    'stdin-lifeline': { type: 'boolean', default: false },
  },
  strict: true,
});

const port = Number.parseInt(args.port, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port ${args.port} is not a port number`);
if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(args.host)) fail(`--host ${args.host} is not a 127.x.y.z loopback address`);

let clients = parseJsonEnv('OIDC_CLIENTS');
if (!Array.isArray(clients)) clients = [clients];
clients = clients.map((c, i) => {
  if (typeof c !== 'object' || c === null || typeof c.client_id !== 'string') {
    fail(`OIDC_CLIENTS[${i}] needs at least client_id and redirect_uris`);
  }
  return {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...c,
  };
});

const users = parseJsonEnv('OIDC_USERS', DEFAULT_USERS);
if (!Array.isArray(users)) fail('OIDC_USERS must be a JSON array');
const ttl = Number.parseInt(process.env.OIDC_TTL || '3600', 10);
if (!Number.isInteger(ttl) || ttl <= 0) fail('OIDC_TTL must be a positive number of seconds');

function lookup(id) {
  const needle = String(id).toLowerCase();
  const known = users.find((u) => u.sub === id || String(u.email || '').toLowerCase() === needle);
  if (known) return known;
  return {
    sub: String(id),
    email: needle.includes('@') ? needle : undefined,
    email_verified: needle.includes('@'),
    name: String(id),
    groups: [],
  };
}

const configuration = {
  clients,
  // Account ids are subs: the login page turns the typed login into one.
  async findAccount(_ctx, id) {
    const user = lookup(id);
    return {
      accountId: id,
      async claims() {
        return {
          sub: user.sub,
          email: user.email,
          email_verified: user.email_verified ?? true,
          name: user.name,
          preferred_username: user.email || user.sub,
          groups: user.groups || [],
        };
      },
    };
  },
  claims: {
    openid: ['sub', 'groups'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    // The library's own logout and error pages load web fonts from the internet;
    // these load nothing.
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.type = 'html';
        ctx.body = page('Sign out', `<h1>Sign out of the test provider?</h1>${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Signed out', '<h1>Signed out</h1><p>You are signed out of the test provider.</p>');
      },
    },
    backchannelLogout: { enabled: true },
  },
  // First-party clients: consent is implied, so the browser sees one login form only.
  async loadExistingGrant(ctx) {
    const { client, session } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    if (grantId) {
      const existing = await ctx.oidc.provider.Grant.find(grantId);
      if (existing) return existing;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope('openid email profile offline_access');
    await grant.save();
    return grant;
  },
  // Refresh tokens for every client allowed the refresh_token grant (no offline_access
  // dance), so gateway refresh can be tested.
  async issueRefreshToken(_ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  ttl: {
    AccessToken: ttl,
    IdToken: ttl,
    RefreshToken: 24 * 3600,
    Grant: 24 * 3600,
    Interaction: 600,
    Session: 24 * 3600,
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    const rows = Object.entries(out).map(([k, v]) => `<p>${esc(k)}: ${esc(v)}</p>`).join('');
    ctx.body = page('Error', `<h1>The test provider refused the request</h1>${rows}`);
  },
  interactions: {
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  cookies: {
    keys: ['realmgate-test-provider-cookie-key-not-secret'],
  },
};

const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A page of the test provider: inline style only, nothing loaded from elsewhere. */
function page(title, body) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · test provider</title>
<style>body{font:16px system-ui,sans-serif;background:#eef2f5;margin:0;padding:48px 16px}
main{max-width:380px;margin:auto;background:#fff;padding:32px;border-radius:6px;border-top:4px solid #6b3fa0}
label{display:block;font-weight:600;margin:12px 0 4px}input{width:100%;box-sizing:border-box;padding:8px;font:inherit}
button{margin-top:20px;padding:10px 20px;font:inherit;background:#6b3fa0;color:#fff;border:0;border-radius:4px}</style></head>
<body><main>${body}</main></body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 64 * 1024) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

/** The login page (GET) and its submission (POST) for one pending interaction. */
async function interaction(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt, params } = details;
  if (prompt.name === 'consent') {
    // loadExistingGrant normally grants already; this covers anything it left out.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  if (req.method === 'POST') {
    const form = await readForm(req);
    const login = (form.get('login') || '').trim();
    if (login) {
      await provider.interactionFinished(req, res, { login: { accountId: lookup(login).sub } }, { mergeWithLastSubmission: false });
      return;
    }
  }
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // form-action covers the redirects after the POST too: the client's http callback.
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:",
  });
  res.end(page('Sign in', `<h1>Test provider</h1><p>Signing in to <b>${esc(params.client_id)}</b>. Any password works.</p>
<form method="post" action="/interaction/${esc(uid)}">
<label for="login">Username or email</label>
<input id="login" name="login" required autocomplete="username" value="${esc(params.login_hint)}" ${params.login_hint ? '' : 'autofocus'}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" ${params.login_hint ? 'autofocus' : ''}>
<button type="submit">Sign in</button>
</form>`));
}

const server = http.createServer();
server.on('error', (err) => fail(`cannot listen on ${args.host}:${port}: ${err.message}`));
server.listen(port, args.host, () => {
  const { port: bound } = server.address();
  const issuer = `http://${args.host}:${bound}`;
  const provider = new Provider(issuer, configuration);
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error', 'userinfo.error', 'backchannel.error']) {
    provider.on(event, (...eventArgs) => {
      const err = eventArgs.find((a) => a instanceof Error);
      const detail = err ? `${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}` : '';
      process.stderr.write(`provider.mjs: ${event} ${detail}\n`);
    });
  }
  const callback = provider.callback();
  server.on('request', (req, res) => {
    const m = /^\/interaction\/([\w-]+)$/.exec(req.url.split('?')[0]);
    if (!m) return callback(req, res);
    return interaction(provider, req, res).catch((err) => {
      process.stderr.write(`provider.mjs: interaction ${err.name}: ${err.message}\n`);
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`sign-in failed: ${err.message}\n`);
    });
  });
  process.stdout.write(`READY ${issuer}\n`);
});

// Nothing to flush: every artifact lives in memory.
const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (args['stdin-lifeline']) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
