// Verifies realmgate's X-Realmgate-Assertion the way an app would, with an
// independent JOSE implementation (the npm `jose` package, not realmgate's
// Rust code): the JWKS served at /.auth/keys, the signature with the key the
// header's `kid` names, the algorithm, `iss`, `aud` and the times.
//
// Usage:
//   node verify-assertion.mjs --jwks '<JWKS JSON from /.auth/keys>' \
//     --issuer https://app.test --audience <route name> --token <JWT>
//
// Success: exit 0, prints {"header": {...}, "payload": {...}} on stdout.
// Failure: exit 1, prints `INVALID <jose error code>: <message>` on stderr.
// The Rust side is tests/it/assertion.rs.

import { parseArgs } from 'node:util';

import { createLocalJWKSet, jwtVerify } from 'jose';

const { values } = parseArgs({
  options: {
    jwks: { type: 'string' },
    issuer: { type: 'string' },
    audience: { type: 'string' },
    token: { type: 'string' },
  },
});
for (const key of ['jwks', 'issuer', 'audience', 'token']) {
  if (!values[key]) {
    console.error(`missing --${key}`);
    process.exit(2);
  }
}

try {
  const keys = createLocalJWKSet(JSON.parse(values.jwks));
  const { payload, protectedHeader } = await jwtVerify(values.token, keys, {
    issuer: values.issuer,
    audience: values.audience,
    // What realmgate says it signs with; anything else must fail.
    algorithms: ['ES256', 'RS256'],
    requiredClaims: ['iss', 'aud', 'sub', 'iat', 'exp'],
  });
  console.log(JSON.stringify({ header: protectedHeader, payload }));
} catch (e) {
  console.error(`INVALID ${e.code ?? e.name}: ${e.message}`);
  process.exit(1);
}
