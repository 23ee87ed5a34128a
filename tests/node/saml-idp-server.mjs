#!/usr/bin/env node
// A real SAML 2.0 and WS-Federation identity provider for realmgate's
// real-world test tier, built the way Auth0 builds theirs: Express with npm
// `samlp` (SAML 2.0: HTTP-Redirect AuthnRequest in, signed Response out over
// HTTP-POST, IdP-initiated single logout, IdP metadata) and npm `wsfed`
// (WS-Federation passive: wa=wsignin1.0 in, a signed SAML 1.1 token in
// `wresult` out, FederationMetadata.xml). A user/password login page sits
// in front of both; the IdP keeps its own session in a cookie.
//
// CLI CONTRACT
//   node tests/node/saml-idp-server.mjs [--host 127.0.0.1] [--port 0] [--stdin-lifeline]
//
//   --host H           loopback address to bind (default 127.0.0.1). A different one from
//                      the gateway's keeps the two sites' cookies apart in the browser.
//   --port N           port (default 0 = any free port).
//   --stdin-lifeline   exit when stdin reaches EOF (use with stdin piped), so a test that
//                      dies never leaves the IdP running.
//
//   env SAML_IDP_KEYS  REQUIRED. JSON array of signing keys [{"cert": PEM file, "key": PEM
//                      file}, ...]. Key 0 signs and is published at start; the control
//                      endpoint below rolls over to the others.
//   env SAML_IDP_USERS optional JSON array replacing the default user:
//                      [{"login","password","id","email","name","groups":[...]}]
//                      Default: carol@fabrikam.test / carol-password, id u-carol,
//                      "Carol Ng", groups ["Finance", "HR Admins"].
//
//   stdout             exactly one line `READY <base url>` once listening, e.g.
//                      `READY http://127.0.0.2:41234`. Nothing else.
//   stderr             one line per request the IdP refused or failed, for test output.
//   exit               SIGTERM/SIGINT (0), stdin EOF with --stdin-lifeline (0), bad
//                      configuration (2, the reason on stderr).
//
// ENDPOINTS (BASE = the READY url)
//   SAML 2.0, entity id BASE/saml
//     GET  /saml/FederationMetadata/2007-06/FederationMetadata.xml   IdP metadata (samlp):
//          signing certificate(s), SingleSignOnService and SingleLogoutService (HTTP-Redirect)
//     GET  /saml/sso?SAMLRequest=…&RelayState=…   the login page, or (signed in) the signed
//          Response auto-posted to the AuthnRequest's AssertionConsumerServiceURL
//          (assertion signed, RSA-SHA256; persistent NameID = the user's id; Recipient and
//          Destination = that ACS; SessionIndex = the IdP session's).
//     GET  /saml/slo     no SAMLRequest: IdP-initiated single logout (samlp.logout): the IdP
//          session ends and every SP the browser signed in to gets a LogoutRequest over
//          HTTP-Redirect, signed with the query signature, to its SingleLogoutService
//          (registered SP) or its ACS's sibling `/.auth/saml/<name>/slo` (realmgate's
//          single logout URL); their LogoutResponses come back here; the last one ends on
//          a page saying "Signed out at the IdP".
//   WS-Federation passive, entity id BASE/wsfed
//     GET  /wsfed/FederationMetadata/2007-06/FederationMetadata.xml   (wsfed) signing
//          certificate(s) and PassiveRequestorEndpoint BASE/wsfed
//     GET  /wsfed?wa=wsignin1.0&wtrealm=…&wreply=…&wctx=…   the login page, or the signed
//          SAML 1.1 token in a RequestSecurityTokenResponse auto-posted to wreply
//          (audience = wtrealm).
//     GET  /wsfed?wa=wsignout1.0   the IdP session ends and the browser is sent to the
//          relying party it signed in to, at its reply URL with wa=wsignoutcleanup1.0 (as
//          AD FS does); with none, to `wreply` when given (loopback only), else a page
//          saying "Signed out at the IdP".
//   Login page: field `login` (labelled "User name"), field `password`, button "Sign in",
//   and a "Cancel" button: for a SAML sign-in the IdP then posts a signed Response with
//   status Responder and no assertion to the ACS (samlp.sendError), as AD FS does.
//   A wrong password shows the form again with "Wrong user name or password." (401).
//
//   Service providers: one registered from its SP metadata (control `registerSp` below)
//   is served as an IdP admin would set it up: its AuthnRequest must name the registered
//   ACS (or none), must carry a valid HTTP-Redirect query signature when the metadata
//   has a signing certificate (else the IdP answers 500 naming the signature error), its
//   LogoutResponses too, and its SingleLogoutService gets the LogoutRequests. An SP not
//   registered is trusted as long as its ACS / wreply is a loopback URL (127.0.0.0/8,
//   ::1): this IdP serves the service providers on this machine and nothing else.
//
// TEST CONTROLS (POST /control, JSON body, answered with the resulting state as JSON)
//   {"publish": [0, 1]}      the key indexes whose certificates the metadata lists
//   {"signWith": 1}          the key index that signs from now on
//   {"clockOffsetSeconds": N} this process's clock runs N seconds off (a skewed IdP host):
//                            IssueInstant, NotBefore and NotOnOrAfter are stamped with it
//   {"registerSp": URL}      fetch an SP's metadata (realmgate's /.auth/saml/<name>/metadata)
//                            and register it: entityID, HTTP-POST ACS, SingleLogoutService,
//                            signing certificate. With "certFile": PEM file, that certificate
//                            replaces the metadata's (an admin who uploaded the wrong one).
//   {"sloBinding": "post"}   LogoutRequests of sign-ins from now on go over HTTP-POST (a
//                            self-posting form, enveloped XML signature) instead of
//                            "redirect" (the default)
//   {}                       nothing changes; the answer's "metadataHits" counts the GETs of
//                            each metadata document so far ({"saml": n, "wsfed": n})
//
// TEST ONLY: plain HTTP on loopback, keys from files the test generated, users in memory.

import crypto from 'node:crypto';
import fs from 'node:fs';
import { parseArgs } from 'node:util';

import express from 'express';
import samlp from 'samlp';
import wsfed from 'wsfed';

const SCRIPT = 'saml-idp-server.mjs';

function die(message, code = 2) {
  process.stderr.write(`${SCRIPT}: ${message}\n`);
  process.exit(code);
}

// A skewable clock for the whole process: the libraries stamp their
// assertions with `new Date()` / `Date.now()` at call time.
let clockOffsetMs = 0;
const RealDate = Date;
class SkewedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + clockOffsetMs);
    else super(...args);
  }

  static now() {
    return RealDate.now() + clockOffsetMs;
  }
}
globalThis.Date = SkewedDate;

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      'stdin-lifeline': { type: 'boolean', default: false },
    },
    strict: true,
  }));
} catch (err) {
  die(`${err.message} (see the header of this file)`);
}

let keys;
try {
  keys = JSON.parse(process.env.SAML_IDP_KEYS || 'null');
  if (!Array.isArray(keys) || keys.length === 0) throw new Error('an array of {cert, key} files is required');
  keys = keys.map((k) => ({ cert: fs.readFileSync(k.cert, 'utf8'), key: fs.readFileSync(k.key, 'utf8') }));
} catch (err) {
  die(`SAML_IDP_KEYS: ${err.message}`);
}

let users;
try {
  users = JSON.parse(
    process.env.SAML_IDP_USERS ||
      JSON.stringify([
        {
          login: 'carol@fabrikam.test',
          password: 'carol-password',
          id: 'u-carol',
          email: 'carol@fabrikam.test',
          name: 'Carol Ng',
          groups: ['Finance', 'HR Admins'],
        },
      ]),
  );
  if (!Array.isArray(users)) throw new Error('an array of users is required');
} catch (err) {
  die(`SAML_IDP_USERS: ${err.message}`);
}

// Registered service providers, by entity id: { acs, slo, cert (PEM) }.
const sps = new Map();

const unxml = (v) => v.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
/** Every `<prefix:name …>` start tag of `xml`, with its attributes. */
function tags(xml, name) {
  return [...xml.matchAll(new RegExp(`<(?:[\\w.-]+:)?${name}\\b([^>]*)>`, 'g'))].map((m) => {
    const attrs = {};
    for (const a of m[1].matchAll(/([\w:.-]+)="([^"]*)"/g)) attrs[a[1]] = unxml(a[2]);
    return attrs;
  });
}
/** What an IdP takes from SP metadata. */
function parseSpMetadata(xml) {
  const entity = tags(xml, 'EntityDescriptor')[0];
  const acs = tags(xml, 'AssertionConsumerService').find((t) => t.Binding === BINDINGS.post);
  const slo = tags(xml, 'SingleLogoutService').find((t) => t.Binding === BINDINGS.redirect);
  const der = /<(?:[\w.-]+:)?X509Certificate>([^<]+)</.exec(xml);
  if (!entity || !entity.entityID || !acs) throw new Error('no entityID or HTTP-POST AssertionConsumerService in the SP metadata');
  const cert = der ? `-----BEGIN CERTIFICATE-----\n${der[1].replace(/\s+/g, '').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n` : null;
  return { entityId: entity.entityID, acs: acs.Location, slo: slo ? slo.Location : null, cert };
}

const BINDINGS = {
  redirect: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
  post: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST',
};
const state = { publish: [0], signWith: 0, sloBinding: 'redirect' };
const signing = () => keys[state.signWith];

// AD FS's claim URIs (what realmgate maps by default), and a persistent NameID.
const CLAIMS = {
  email: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress',
  name: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name',
  upn: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn',
  groups: 'http://schemas.xmlsoap.org/claims/Group',
};
const PERSISTENT = 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent';

function ProfileMapper(user) {
  if (!(this instanceof ProfileMapper)) return new ProfileMapper(user);
  this.user = user;
}
ProfileMapper.prototype.getClaims = function getClaims() {
  return {
    [CLAIMS.email]: this.user.email,
    [CLAIMS.name]: this.user.name,
    [CLAIMS.upn]: this.user.login,
    [CLAIMS.groups]: this.user.groups || [],
  };
};
ProfileMapper.prototype.getNameIdentifier = function getNameIdentifier() {
  return { nameIdentifier: this.user.id, nameIdentifierFormat: PERSISTENT };
};
ProfileMapper.prototype.metadata = Object.entries(CLAIMS).map(([k, id]) => ({
  id,
  optional: true,
  displayName: k,
  description: k,
}));

// --- the IdP's own session (cookie `idp_session`) ---
const sessions = new Map();
function idpSession(req, res) {
  const cookie = (req.headers.cookie || '').split(/;\s*/).find((c) => c.startsWith('idp_session='));
  let id = cookie && cookie.slice('idp_session='.length);
  if (!id || !sessions.has(id)) {
    id = crypto.randomBytes(16).toString('hex');
    sessions.set(id, { user: null, sessionIndex: null, participants: [], relyingParties: [] });
    res.append('Set-Cookie', `idp_session=${id}; Path=/; HttpOnly; SameSite=Lax`);
  }
  const s = sessions.get(id);
  // samlp.logout keeps its transaction state in req.session (flowstate).
  req.session = s;
  return s;
}

function isLoopbackUrl(text) {
  try {
    const u = new URL(text);
    const host = u.hostname.replace(/^\[|\]$/g, '');
    return (u.protocol === 'http:' || u.protocol === 'https:') && (/^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1' || host === 'localhost');
  } catch {
    return false;
  }
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(res, returnTo, message, status = 200) {
  res.status(status).type('html').send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - Test IdP</title></head>
<body><h1>Test IdP</h1>
${message ? `<p role="alert">${esc(message)}</p>` : ''}
<form method="post" action="/login">
<input type="hidden" name="return" value="${esc(returnTo)}">
<p><label for="login">User name</label> <input id="login" name="login" autocomplete="username" required></p>
<p><label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit">Sign in</button> <button type="submit" name="cancel" value="1" formnovalidate>Cancel</button></p>
</form></body></html>`);
}

function signedOutPage(res) {
  res.type('html').send('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signed out - Test IdP</title></head><body><h1>Signed out at the IdP</h1></body></html>');
}

/** The metadata a library renders for the signing key, listing every published certificate. */
function withPublishedCertificates(xml, libraryCert) {
  const pem = (c) => c.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const mine = pem(libraryCert);
  const block = xml.match(/<KeyDescriptor use="signing">[\s\S]*?<\/KeyDescriptor>/);
  if (!block) throw new Error('no KeyDescriptor in the library metadata');
  const all = state.publish.map((i) => block[0].replace(mine, pem(keys[i].cert))).join('');
  return xml.replace(block[0], all);
}

const metadataHits = { saml: 0, wsfed: 0 };

/** Runs a library's metadata middleware and rewrites its certificates. */
function metadata(kind, make) {
  return (req, res, next) => {
    metadataHits[kind] += 1;
    const send = res.send.bind(res);
    res.send = (body) => {
      try {
        return send(withPublishedCertificates(String(body), signing().cert));
      } catch (err) {
        return next(err);
      }
    };
    make()(req, res, next);
  };
}

const app = express();
app.disable('x-powered-by');
app.set('query parser', 'simple');
app.use(express.urlencoded({ extended: false, limit: '256kb' }));
app.use(express.json({ limit: '16kb' }));

let base = '';
const samlIssuer = () => `${base}/saml`;
const wsfedIssuer = () => `${base}/wsfed`;

app.post('/control', async (req, res) => {
  const b = req.body || {};
  if (b.registerSp !== undefined) {
    try {
      const answer = await fetch(b.registerSp, { redirect: 'error', signal: AbortSignal.timeout(10000) });
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      const sp = parseSpMetadata(await answer.text());
      if (b.certFile) sp.cert = fs.readFileSync(b.certFile, 'utf8');
      sps.set(sp.entityId, sp);
    } catch (err) {
      return res.status(400).json({ error: `registerSp ${b.registerSp}: ${err.message}` });
    }
  }
  const valid = (i) => Number.isInteger(i) && i >= 0 && i < keys.length;
  if (b.publish !== undefined) {
    if (!Array.isArray(b.publish) || b.publish.length === 0 || !b.publish.every(valid)) return res.status(400).json({ error: 'publish: key indexes' });
    state.publish = b.publish;
  }
  if (b.signWith !== undefined) {
    if (!valid(b.signWith)) return res.status(400).json({ error: 'signWith: a key index' });
    state.signWith = b.signWith;
  }
  if (b.sloBinding !== undefined) {
    if (!BINDINGS[b.sloBinding]) return res.status(400).json({ error: 'sloBinding: "redirect" or "post"' });
    state.sloBinding = b.sloBinding;
  }
  if (b.clockOffsetSeconds !== undefined) {
    if (!Number.isFinite(b.clockOffsetSeconds)) return res.status(400).json({ error: 'clockOffsetSeconds: a number' });
    clockOffsetMs = b.clockOffsetSeconds * 1000;
  }
  res.json({ ...state, clockOffsetSeconds: clockOffsetMs / 1000, metadataHits });
});

/** The user cancelled at the login page: a signed error Response to the SP. */
function cancelSaml(req, res, next, target) {
  const query = Object.fromEntries(new URL(target, base).searchParams);
  samlp.parseRequest({ query, body: {} }, (err, request) => {
    if (err) return next(err);
    const acs = request && request.assertionConsumerServiceURL;
    if (!acs || !isLoopbackUrl(acs)) return res.status(400).type('text').send(`unknown AssertionConsumerServiceURL ${acs}`);
    const { cert, key } = signing();
    samlp.sendError({
      issuer: samlIssuer(),
      cert,
      key,
      signResponse: true,
      signatureAlgorithm: 'rsa-sha256',
      digestAlgorithm: 'sha256',
      inResponseTo: request.id,
      destination: acs,
      RelayState: query.RelayState || '',
      error: { description: 'The user cancelled the sign-in.' },
      getPostURL: (r, cb) => cb(null, acs),
    })(req, res, next);
  });
}

app.post('/login', (req, res, next) => {
  const s = idpSession(req, res);
  const { login = '', password = '', return: returnTo = '/' } = req.body || {};
  const target = /^\/(saml\/sso|wsfed)\?/.test(returnTo) ? returnTo : '/';
  if (req.body && req.body.cancel && target.startsWith('/saml/sso?')) return cancelSaml(req, res, next, target);
  const user = users.find((u) => u.login.toLowerCase() === String(login).toLowerCase());
  const given = Buffer.from(String(password));
  const expected = Buffer.from(String(user ? user.password : ''));
  if (!user || given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
    return loginPage(res, target, 'Wrong user name or password.', 401);
  }
  s.user = user;
  s.sessionIndex = `_${crypto.randomBytes(12).toString('hex')}`;
  s.participants = [];
  s.relyingParties = [];
  res.redirect(303, target);
});

// --- SAML 2.0 ---
app.get('/saml/FederationMetadata/2007-06/FederationMetadata.xml', metadata('saml', () =>
  samlp.metadata({
    issuer: samlIssuer(),
    cert: signing().cert,
    profileMapper: ProfileMapper,
    redirectEndpointPath: '/saml/sso',
    postEndpointPath: '/saml/sso',
    logoutEndpointPaths: { redirect: '/saml/slo' },
  })));

app.get('/saml/sso', (req, res, next) => {
  const s = idpSession(req, res);
  if (!req.query.SAMLRequest) return res.status(400).type('text').send('SAMLRequest is missing');
  if (!s.user) return loginPage(res, req.originalUrl);
  samlp.parseRequest(req, (err, request) => {
    if (err) return next(err);
    const sp = request && request.issuer;
    const registered = sps.get(sp);
    const asked = request && request.assertionConsumerServiceURL;
    if (registered && asked && asked !== registered.acs) {
      return res.status(400).type('text').send(`AssertionConsumerServiceURL ${asked} is not the one registered for ${sp}`);
    }
    const acs = registered ? registered.acs : asked;
    if (!acs || !isLoopbackUrl(acs)) return res.status(400).type('text').send(`unknown AssertionConsumerServiceURL ${acs}`);
    // A registered SP with a certificate: samlp checks the query signature.
    const spCert = registered ? registered.cert : null;
    const { cert, key } = signing();
    const user = s.user;
    samlp.auth({
      issuer: samlIssuer(),
      cert,
      key,
      signatureAlgorithm: 'rsa-sha256',
      digestAlgorithm: 'sha256',
      signResponse: false,
      lifetimeInSeconds: 300,
      destination: acs,
      recipient: acs,
      sessionIndex: s.sessionIndex,
      signingCert: spCert || undefined,
      profileMapper: ProfileMapper,
      getUserFromRequest: () => user,
      getPostURL: (audience, dom, r, cb) => {
        // From the SP metadata, else realmgate's single logout URL next to its ACS.
        const slo = (registered && registered.slo) || acs.replace(/\/\.auth\/login\/([^/]+)\/callback$/, '/.auth/saml/$1/slo');
        if (!s.participants.some((p) => p.serviceProviderId === sp)) {
          s.participants.push({
            serviceProviderId: sp,
            sessionIndex: s.sessionIndex,
            nameId: user.id,
            nameIdFormat: PERSISTENT,
            serviceProviderLogoutURL: slo,
            binding: BINDINGS[state.sloBinding],
            // The SP's LogoutResponse must be signed by it when its certificate is known.
            cert: spCert || undefined,
          });
        }
        cb(null, acs);
      },
    })(req, res, next);
  });
});

// IdP-initiated single logout (no SAMLRequest), and the SPs' LogoutResponses.
app.get('/saml/slo', (req, res, next) => {
  const s = idpSession(req, res);
  // samlp reads req.body as well; Express 5 leaves it undefined on a GET.
  req.body = req.body || {};
  const { cert, key } = signing();
  // A sign-out started here or by an SP's LogoutRequest ends the IdP session.
  if (!req.query.SAMLResponse) s.user = null;
  const participants = new SamlpParticipants(s.participants);
  const send = res.send.bind(res);
  // samlp answers the end of an IdP-initiated logout with a bare 200.
  res.send = (body) => (typeof body === 'number' || body === undefined ? signedOutPage(Object.assign(res, { send })) : send(body));
  samlp.logout({
    issuer: samlIssuer(),
    cert,
    key,
    signatureAlgorithm: 'rsa-sha256',
    digestAlgorithm: 'sha256',
    deflate: true,
    protocolBinding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
    sessionParticipants: participants,
  })(req, res, next);
});

// samlp's SessionParticipants over this IdP session's list.
class SamlpParticipants {
  constructor(list) {
    this.list = list;
  }

  match(issuer, indexes, nameId) {
    const ix = Array.isArray(indexes) ? indexes : [indexes];
    return (p) => (!issuer || p.serviceProviderId === issuer) && ix.includes(p.sessionIndex) && p.nameId === nameId;
  }

  get(issuer, indexes, nameId, cb) {
    cb(null, this.list.find(this.match(issuer, indexes, nameId)));
  }

  hasElements() {
    return this.list.length > 0;
  }

  getFirst(cb) {
    cb(null, this.list[0]);
  }

  remove(issuer, index, nameId, cb) {
    const at = this.list.findIndex(this.match(issuer, index, nameId));
    const removed = at >= 0 ? this.list.splice(at, 1)[0] : undefined;
    cb(null, removed);
  }
}

// --- WS-Federation passive ---
app.get('/wsfed/FederationMetadata/2007-06/FederationMetadata.xml', metadata('wsfed', () =>
  wsfed.metadata({
    issuer: wsfedIssuer(),
    cert: signing().cert,
    profileMapper: ProfileMapper,
    endpointPath: '/wsfed',
  })));

app.get('/wsfed', (req, res, next) => {
  const s = idpSession(req, res);
  const wa = req.query.wa;
  if (wa === 'wsignout1.0' || wa === 'wsignoutcleanup1.0') {
    s.user = null;
    const rp = s.relyingParties.pop();
    s.relyingParties = [];
    if (rp) return res.redirect(303, `${rp}${rp.includes('?') ? '&' : '?'}wa=wsignoutcleanup1.0`);
    if (req.query.wreply && isLoopbackUrl(req.query.wreply)) return res.redirect(303, req.query.wreply);
    return signedOutPage(res);
  }
  if (wa !== 'wsignin1.0') return res.status(400).type('text').send(`unsupported wa ${wa}`);
  if (!s.user) return loginPage(res, req.originalUrl);
  const reply = req.query.wreply;
  if (!reply || !isLoopbackUrl(reply)) return res.status(400).type('text').send(`unknown wreply ${reply}`);
  if (!req.query.wtrealm) return res.status(400).type('text').send('wtrealm is missing');
  const { cert, key } = signing();
  const user = s.user;
  wsfed.auth({
    issuer: wsfedIssuer(),
    cert,
    key,
    signatureAlgorithm: 'rsa-sha256',
    digestAlgorithm: 'sha256',
    lifetimeInSeconds: 300,
    profileMapper: ProfileMapper,
    getUserFromRequest: () => user,
    getPostURL: (wtrealm, wreply, r, cb) => {
      if (!s.relyingParties.includes(wreply)) s.relyingParties.push(wreply);
      cb(null, wreply);
    },
  })(req, res, next);
});

app.use((err, req, res, _next) => {
  process.stderr.write(`${SCRIPT}: ${req.method} ${req.path}: ${err && err.message ? err.message : err}\n`);
  res.status(500).type('text').send(`IdP error: ${err && err.message ? err.message : err}`);
});

const server = app.listen(Number.parseInt(args.port, 10), args.host, () => {
  const { address, port } = server.address();
  const host = address.includes(':') ? `[${address}]` : address;
  base = `http://${host}:${port}`;
  process.stdout.write(`READY ${base}\n`);
});
server.on('error', (err) => die(`cannot listen on ${args.host}:${args.port}: ${err.message}`));

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (args['stdin-lifeline']) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}
