#!/usr/bin/env node
// Front-channel logout as Entra does it: a page on the identity provider's origin loads
// the gateway's front-channel logout URL in a hidden iframe. Reports whether the framed
// answer was rendered (CSP frame-ancestors allowed the framing page's origin).
//
// CLI CONTRACT
//   node tests/node/frontchannel-frame.mjs --parent ORIGIN --frame URL [--timeout-ms MS]
//
//   --parent ORIGIN   the framing page's origin (e.g. the IdP's http://127.0.0.1:PORT). The
//                     page itself is served by this script (request interception), so no
//                     server is needed at that origin; only the iframe's URL is fetched.
//   --frame URL       the URL framed (the gateway's /.auth/logout/frontchannel/...).
//   --timeout-ms MS   the whole run (default 30000).
//
//   stdout   `RENDERED <text of the framed page>` when the frame shows the gateway's page,
//            `BLOCKED` when the browser refused to render it in the frame.
//   stderr   on failure, what went wrong.
//   exit     0 either answer, 1 the run failed, 2 bad command line.

import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

import { CHROMIUM, die, watchdog } from './lib/browser.mjs';

const SCRIPT = 'frontchannel-frame.mjs';

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      parent: { type: 'string' },
      frame: { type: 'string' },
      'timeout-ms': { type: 'string', default: '30000' },
    },
  }));
} catch (err) {
  die(SCRIPT, err.message, 2);
}
if (!args.parent || !args.frame) die(SCRIPT, '--parent and --frame are required', 2);
const timeoutMs = Number(args['timeout-ms']);
watchdog(SCRIPT, timeoutMs);

// As lib/browser.mjs launches it, plus one switch: the framing page is served by
// interception, which Chromium counts as a public address, and its Local Network
// Access check would then refuse every frame of 127.0.0.1 (the real IdP is public
// and the gateway is not local to it either, so the check is not what is tested).
let browser;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: timeoutMs,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      '--disable-features=LocalNetworkAccessChecks',
    ],
  });
} catch (err) {
  die(SCRIPT, `cannot start ${CHROMIUM}: ${err.message.split('\n')[0]}`);
}
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(timeoutMs / 2);
  const parentUrl = `${args.parent.replace(/\/$/, '')}/logout-page`;
  // The IdP's sign-out page: only the hidden iframe, as Entra's.
  const html = `<!doctype html><title>Signing out</title>
<iframe id="f" style="display:none" src="${args.frame.replace(/"/g, '&quot;')}"></iframe>`;
  await page.route(parentUrl, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: html }),
  );
  const framed = page
    .waitForResponse((r) => r.url() === args.frame, { timeout: timeoutMs / 2 })
    .catch((err) => err);
  await page.goto(parentUrl, { waitUntil: 'load' });
  const resp = await framed;
  if (resp instanceof Error) die(SCRIPT, `the framed URL was not fetched: ${resp.message.split('\n')[0]}`);
  if (resp.status() < 200 || resp.status() > 299) {
    die(SCRIPT, `the framed URL answered ${resp.status()}`);
  }
  // Give the frame its chance to render (bounded).
  const deadline = Date.now() + timeoutMs / 3;
  let text = null;
  while (Date.now() < deadline) {
    const frame = page.frames().find((f) => f !== page.mainFrame());
    if (frame && frame.url() === args.frame) {
      try {
        text = await frame.evaluate(() => document.body ? document.body.innerText : '');
        if (text) break;
      } catch {
        // A blocked frame has no document of the gateway's to read.
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (text) {
    process.stdout.write(`RENDERED ${text.replace(/\s+/g, ' ').trim()}\n`);
  } else {
    process.stdout.write('BLOCKED\n');
  }
} catch (err) {
  die(SCRIPT, err.message.split('\n')[0]);
} finally {
  await browser.close();
}
