// A third-party SAML 2.0 identity provider's signer: npm samlp (Auth0; it
// signs with xml-crypto), used by tests/it/saml_idp.rs to check that
// realmgate accepts what a real IdP implementation produces, and refuses it
// when it is not meant for it.
//
// Contract: node saml-idp.mjs CONFIG.json
//   CONFIG: { issuer, certFile, keyFile, audience, recipient, destination,
//             inResponseTo, sessionIndex, signResponse, signAssertion,
//             user: { id, email, displayName, givenName, familyName } }
// Prints the signed <samlp:Response> on stdout; exit 1 with the error on stderr.
import fs from 'node:fs';
import samlp from 'samlp';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const user = {
  id: cfg.user.id,
  emails: [{ value: cfg.user.email }],
  displayName: cfg.user.displayName,
  name: { givenName: cfg.user.givenName, familyName: cfg.user.familyName },
};
samlp.getSamlResponse(
  {
    issuer: cfg.issuer,
    cert: fs.readFileSync(cfg.certFile),
    key: fs.readFileSync(cfg.keyFile),
    audience: cfg.audience,
    recipient: cfg.recipient,
    destination: cfg.destination,
    inResponseTo: cfg.inResponseTo,
    sessionIndex: cfg.sessionIndex,
    signatureAlgorithm: 'rsa-sha256',
    digestAlgorithm: 'sha256',
    signResponse: cfg.signResponse,
    signAssertion: cfg.signAssertion,
    lifetimeInSeconds: 300,
    nameIdentifierFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
  },
  user,
  (err, xml) => {
    if (err) {
      console.error(String(err && err.stack ? err.stack : err));
      process.exit(1);
    }
    process.stdout.write(xml);
  },
);
