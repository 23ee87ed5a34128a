// Self-test of the real-world tier's tools, independent of realmgate: provider.mjs
// (oidc-provider) and browser-login.mjs (chromium) against a minimal relying party
// written here. It proves the tools keep their CLI contracts, that the provider puts
// email and groups into a properly signed ID token, and that the browser script fails
// loudly when an expectation is not met; saml-idp-server.mjs and saml-browser.mjs keep
// their command-line contracts (their sign-ins need realmgate: tests/it/saml_real_idp.rs).
// realmgate itself is tested with these tools
// by the Rust integration tests (tests/it/).
//
// Run: node --test tests/node/selftest.test.mjs   (scripts/test.sh does)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { createRemoteJWKSet, jwtVerify } from 'jose';

const HERE = dirname(fileURLToPath(import.meta.url));
const CLIENT_ID = 'selftest-rp';
const CLIENT_SECRET = 'selftest-secret-0123456789abcdef0123456789';

const b64url = (buf) => buf.toString('base64url');
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A relying party shaped like the gateway, just enough for browser-login.mjs. */
function startRelyingParty() {
  const pending = new Map();
  const sessions = new Map();
  const rp = { issuer: null, metadata: null, jwks: null };
  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, rp.origin);
      const sid = /rp_session=([\w-]+)/.exec(req.headers.cookie || '')?.[1];
      if (url.pathname === '/.auth/login' && req.method === 'GET') {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end(`<!doctype html><title>Sign in</title><form method="post" action="/.auth/login">
<input type="hidden" name="rd" value="${esc(url.searchParams.get('rd') || '/')}">
<label for="email">Email address</label><input id="email" name="email" type="email" required>
<button type="submit">Continue</button></form>`);
        return;
      }
      if (url.pathname === '/.auth/login' && req.method === 'POST') {
        let body = '';
        for await (const chunk of req) body += chunk;
        const form = new URLSearchParams(body);
        const state = b64url(randomBytes(16));
        const verifier = b64url(randomBytes(32));
        const nonce = b64url(randomBytes(16));
        pending.set(state, { verifier, nonce, rd: form.get('rd') || '/' });
        const authorize = new URL(rp.metadata.authorization_endpoint);
        authorize.search = new URLSearchParams({
          client_id: CLIENT_ID,
          redirect_uri: `${rp.origin}/.auth/callback`,
          response_type: 'code',
          scope: 'openid email profile',
          state,
          nonce,
          code_challenge: b64url(createHash('sha256').update(verifier).digest()),
          code_challenge_method: 'S256',
          login_hint: form.get('email') || '',
        }).toString();
        res.writeHead(302, { location: authorize.href }).end();
        return;
      }
      if (url.pathname === '/.auth/callback') {
        const flow = pending.get(url.searchParams.get('state'));
        pending.delete(url.searchParams.get('state'));
        if (!flow) throw new Error(`unknown state; provider said ${url.search}`);
        const token = await fetch(rp.metadata.token_endpoint, {
          method: 'POST',
          headers: {
            authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
            'content-type': 'application/x-www-form-urlencoded',
          },
          body: new URLSearchParams({
            grant_type: 'authorization_code',
            code: url.searchParams.get('code') || '',
            redirect_uri: `${rp.origin}/.auth/callback`,
            code_verifier: flow.verifier,
          }),
        });
        const tokens = await token.json();
        if (!token.ok) throw new Error(`token endpoint: ${JSON.stringify(tokens)}`);
        const { payload } = await jwtVerify(tokens.id_token, rp.jwks, { issuer: rp.issuer, audience: CLIENT_ID });
        if (payload.nonce !== flow.nonce) throw new Error('nonce mismatch');
        rp.lastIdToken = payload;
        rp.lastTokens = tokens;
        const id = b64url(randomBytes(16));
        sessions.set(id, { claims: payload, idToken: tokens.id_token });
        res.writeHead(302, { location: flow.rd, 'set-cookie': `rp_session=${id}; HttpOnly; Path=/; SameSite=Lax` }).end();
        return;
      }
      if (url.pathname === '/.auth/logout') {
        const session = sid && sessions.get(sid);
        sessions.delete(sid);
        const end = new URL(rp.metadata.end_session_endpoint);
        end.search = new URLSearchParams({
          client_id: CLIENT_ID,
          post_logout_redirect_uri: `${rp.origin}/.auth/logout/done`,
          ...(session ? { id_token_hint: session.idToken } : {}),
        }).toString();
        res.writeHead(302, { location: end.href, 'set-cookie': 'rp_session=; Path=/; Max-Age=0' }).end();
        return;
      }
      if (url.pathname === '/.auth/logout/done') {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end('<!doctype html><title>Signed out</title><h1>Signed out</h1>');
        return;
      }
      const session = sid && sessions.get(sid);
      const claims = session?.claims;
      if (!claims) {
        res.writeHead(302, { location: `/.auth/login?rd=${encodeURIComponent(url.pathname + url.search)}` }).end();
        return;
      }
      const rows = [
        ['x-forwarded-user', claims.sub],
        ['x-forwarded-email', claims.email],
        ['x-forwarded-groups', (claims.groups || []).join(',')],
      ];
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(`<!doctype html><title>App</title><h1>Signed in</h1><table><tbody>${rows
        .map(([n, v]) => `<tr><th scope="row">${esc(n)}</th><td>${esc(v)}</td></tr>`)
        .join('')}</tbody></table>`);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`relying party error: ${err.message}`);
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      rp.origin = `http://127.0.0.1:${server.address().port}`;
      rp.close = () => new Promise((r) => { server.closeAllConnections(); server.close(r); });
      resolve(rp);
    });
  });
}

/** Spawns provider.mjs and resolves with its issuer once it prints READY. */
function startProvider(redirectUri) {
  const child = spawn(process.execPath, [join(HERE, 'provider.mjs'), '--host', '127.0.0.2', '--stdin-lifeline'], {
    env: {
      ...process.env,
      OIDC_CLIENTS: JSON.stringify({
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [redirectUri],
        post_logout_redirect_uris: [redirectUri.replace('/.auth/callback', '/.auth/logout/done')],
      }),
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`provider not READY within 20 s: ${stderr}`)), 20000);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^READY (\S+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, issuer: m[1], stderr: () => stderr });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`provider exited with ${code}: ${stderr}`));
    });
  });
}

/** Runs browser-login.mjs; resolves with { code, stdout, stderr }. */
function browserLogin(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(HERE, 'browser-login.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

let rp;
let provider;
let shots;

before(async () => {
  rp = await startRelyingParty();
  provider = await startProvider(`${rp.origin}/.auth/callback`);
  rp.issuer = provider.issuer;
  const discovery = await fetch(`${provider.issuer}/.well-known/openid-configuration`);
  assert.equal(discovery.status, 200);
  rp.metadata = await discovery.json();
  rp.jwks = createRemoteJWKSet(new URL(rp.metadata.jwks_uri));
  shots = mkdtempSync(join(tmpdir(), 'realmgate-selftest-'));
});

after(async () => {
  provider?.child.stdin.end();
  provider?.child.kill('SIGTERM');
  await rp?.close();
  if (shots) rmSync(shots, { recursive: true, force: true });
});

test('provider publishes discovery for its loopback issuer', () => {
  assert.equal(rp.metadata.issuer, provider.issuer);
  assert.match(provider.issuer, /^http:\/\/127\.0\.0\.2:\d+$/);
  assert.ok(rp.metadata.end_session_endpoint, 'RP-initiated logout is on');
  assert.equal(rp.metadata.backchannel_logout_supported, true);
  assert.deepEqual(rp.metadata.code_challenge_methods_supported, ['S256']);
});

test('a browser signs in end to end and the ID token carries email and groups', async () => {
  const target = `${rp.origin}/reports/q3?tab=summary`;
  const run = await browserLogin([
    '--url', target,
    '--email', 'alice@contoso.example',
    '--expect-header', 'X-Forwarded-User=alice',
    '--expect-header', 'x-forwarded-email=alice@contoso.example',
    '--expect-header', 'X-Forwarded-Groups~HR Admins',
    '--expect-absent', 'X-Forwarded-Tenant',
    '--expect-text', 'Signed in',
    '--then-logout',
    '--screenshots', shots,
  ]);
  assert.equal(run.code, 0, `browser-login failed:\n${run.stderr}\nprovider:\n${provider.stderr()}`);
  assert.equal(run.stdout, `OK ${target}\n`);
  for (const png of ['01-login.png', '02-provider-1.png', '03-landed.png', '04-logout-provider-1.png', '05-signed-out.png', '06-after-logout.png']) {
    assert.ok(existsSync(join(shots, png)), `${png} written`);
  }
  const id = rp.lastIdToken;
  assert.equal(id.sub, 'alice');
  assert.equal(id.email, 'alice@contoso.example');
  assert.equal(id.email_verified, true);
  assert.equal(id.name, 'Alice Anders');
  assert.deepEqual(id.groups, ['HR Admins', 'Staff']);
  assert.ok(rp.lastTokens.refresh_token, 'a refresh token is issued for refresh tests');
});

test('browser-login fails with a clear message when an expectation is not met', async () => {
  const run = await browserLogin([
    '--url', `${rp.origin}/`,
    '--email', 'bob@contoso.example',
    '--expect-header', 'X-Forwarded-Groups~HR Admins',
    '--expect-header', 'X-Forwarded-Name',
    '--timeout-ms', '10000',
  ]);
  assert.equal(run.code, 1, run.stderr);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /header x-forwarded-groups is \["Staff"\], expected it to contain "HR Admins"/);
  assert.match(run.stderr, /header x-forwarded-name did not reach the app/);
});

test('browser-login rejects a bad command line with exit 2', async () => {
  const run = await browserLogin(['--email', 'alice@contoso.example']);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /--url is required/);
  const noLogin = await browserLogin(['--url', `${rp.origin}/`, '--then-back-and-pick-again']);
  assert.equal(noLogin.code, 2);
  assert.match(noLogin.stderr, /--then-back-and-pick-again needs --email or --login/);
});

/** Runs a script of this directory to its exit (bounded by the test runner). */
function runScript(script, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(HERE, script), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

test('saml-idp-server refuses to start without signing keys (exit 2)', async () => {
  const run = await runScript('saml-idp-server.mjs', ['--port', '0'], { SAML_IDP_KEYS: '' });
  assert.equal(run.code, 2);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /SAML_IDP_KEYS: an array of \{cert, key\} files is required/);
});

test('saml-browser rejects a bad command line with exit 2', async () => {
  const run = await runScript('saml-browser.mjs', ['--email', 'carol@fabrikam.test']);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /--url, --email and --password are required/);
});
