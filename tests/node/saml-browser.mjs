#!/usr/bin/env node
// Signs in through realmgate and a SAML or WS-Federation IdP with a real browser (Debian
// chromium driven by playwright-core): the gateway's email box, the IdP's login page, the
// IdP's auto-posted answer to realmgate's callback, the app. Optionally signs out at the
// IdP afterwards and checks the gateway session ended.
//
// CLI CONTRACT
//   node tests/node/saml-browser.mjs --url URL --email EMAIL [options]
//
//   --url URL             a protected URL on the gateway (http://127.0.0.1:PORT/reports?q=1).
//   --email EMAIL         typed into the gateway's sign-in page ("Email address", "Continue").
//   --login LOGIN         user name on the IdP's login page (default: EMAIL).
//   --password PW         password on the IdP's login page (required).
//   --expect-header SPEC  repeatable, checked against the demo app's header table:
//                         NAME=VALUE (exact), NAME~TEXT (contains), NAME (present).
//   --expect-refusal TEXT instead of landing on the app: the browser must end on a gateway
//                         page under /.auth/ answered with a 4xx status whose text contains
//                         TEXT (the callback refused the IdP's answer).
//   --expect-status N     with --expect-refusal: that exact status (e.g. 401).
//   --then-idp-logout URL after landing, open URL (the IdP's sign-out), follow where the
//                         IdP and the gateway send the browser until a page saying
//                         --signed-out-text is shown, then expect --url to ask for
//                         sign-in again.
//   --signed-out-text T   default "Signed out".
//   --screenshots DIR     01-login.png, 02-idp-login.png, 03-landed.png (or 03-refused.png),
//                         04-signed-out.png, 05-after-logout.png; failure.png on failure.
//   --timeout-ms MS       per step (default 15000). --total-timeout-ms MS (default 90000).
//
//   stdout   `OK <final url>` on success, nothing else.
//   stderr   on failure: what failed, the current URL, title, page text and the last
//            navigations.
//   exit     0 success, 1 a check or the flow failed, 2 bad command line.
//
// The IdP's login page is tests/node/saml-idp-server.mjs's: fields `login` and `password`,
// a "Sign in" button. Its answer is a form that posts itself by script, so after "Sign in"
// the browser is awaited back on the gateway (bounded), not clicked through.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { die, launch, watchdog } from './lib/browser.mjs';

const SCRIPT = 'saml-browser.mjs';

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      url: { type: 'string' },
      email: { type: 'string' },
      login: { type: 'string' },
      password: { type: 'string' },
      'expect-header': { type: 'string', multiple: true, default: [] },
      'expect-refusal': { type: 'string' },
      'expect-status': { type: 'string' },
      'then-idp-logout': { type: 'string' },
      'signed-out-text': { type: 'string', default: 'Signed out' },
      screenshots: { type: 'string' },
      'timeout-ms': { type: 'string', default: '15000' },
      'total-timeout-ms': { type: 'string', default: '90000' },
    },
    strict: true,
  }));
} catch (err) {
  die(SCRIPT, `${err.message} (see the header of this file for the options)`, 2);
}
if (!args.url || !args.email || !args.password) die(SCRIPT, '--url, --email and --password are required', 2);
let start;
try {
  start = new URL(args.url);
} catch {
  die(SCRIPT, `--url ${args.url} is not a URL`, 2);
}
const stepTimeout = Number.parseInt(args['timeout-ms'], 10);
const totalTimeout = Number.parseInt(args['total-timeout-ms'], 10);
if (!(stepTimeout > 0) || !(totalTimeout > 0)) die(SCRIPT, 'timeouts must be positive numbers of milliseconds', 2);
const login = args.login || args.email;
const expectations = args['expect-header'].map((spec) => {
  const at = spec.search(/[=~]/);
  if (at === 0) die(SCRIPT, `--expect-header ${spec}: missing header name`, 2);
  if (at < 0) return { spec, name: spec.toLowerCase(), op: 'present' };
  return { spec, name: spec.slice(0, at).trim().toLowerCase(), op: spec[at] === '=' ? 'equals' : 'contains', value: spec.slice(at + 1) };
});

watchdog(SCRIPT, totalTimeout);
if (args.screenshots) mkdirSync(args.screenshots, { recursive: true });

const browser = await launch(SCRIPT, stepTimeout);
// The gateway's certificate is self-signed (tests only).
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });
const page = await context.newPage();
page.setDefaultTimeout(stepTimeout);
page.setDefaultNavigationTimeout(stepTimeout);
const trail = [];
let lastMain = null;
page.on('response', (r) => {
  if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) {
    trail.push(`${r.status()} ${r.request().method()} ${r.url()}`);
    lastMain = r;
  }
});
page.on('requestfailed', (r) => trail.push(`FAILED ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));

async function shot(name) {
  if (args.screenshots) await page.screenshot({ path: join(args.screenshots, name), fullPage: true }).catch(() => {});
}

async function fail(problems) {
  const lines = Array.isArray(problems) ? problems : [problems];
  let ctx = '';
  try {
    await shot('failure.png');
    const title = await page.title();
    const text = (await page.locator('body').innerText({ timeout: 2000 })).slice(0, 1500);
    ctx = `\n  at ${page.url()}\n  title: ${title}\n  page text:\n${text.replace(/^/gm, '    ')}`;
  } catch {
    ctx = `\n  at ${page.url()}`;
  }
  ctx += `\n  navigation (last 12):\n${trail.slice(-12).map((t) => `    ${t}`).join('\n')}`;
  await browser.close().catch(() => {});
  die(SCRIPT, `${lines.join('\n')}${ctx}`);
}

async function step(what, action) {
  try {
    return await action();
  } catch (err) {
    return fail(`${what}: ${err.message.split('\n')[0]}`);
  }
}

const onGateway = (u) => u.origin === start.origin;

try {
  // 1. The protected URL: the gateway's sign-in page; the email routes to the IdP.
  await step(`opening ${start.href}`, () => page.goto(start.href, { waitUntil: 'load' }));
  if (!new URL(page.url()).pathname.startsWith('/.auth/')) await fail('expected the gateway sign-in page');
  await shot('01-login.png');
  const email = page.getByLabel('Email address');
  if ((await email.count()) !== 1) await fail('expected one field labelled "Email address"');
  await email.fill(args.email);
  await step('submitting the email', () =>
    Promise.all([page.waitForURL((u) => !onGateway(u), { waitUntil: 'load' }), page.getByRole('button', { name: 'Continue' }).click()]));

  // 2. The IdP's login page.
  const loginField = page.locator('input[name="login"]');
  await step('waiting for the IdP login page', () => loginField.waitFor({ state: 'visible' }));
  await shot('02-idp-login.png');
  await loginField.fill(login);
  await page.locator('input[name="password"]').fill(args.password);
  // The IdP's answer posts itself to the gateway's callback, which redirects on.
  const back = args['expect-refusal']
    ? (u) => onGateway(u) && u.pathname.startsWith('/.auth/')
    : (u) => onGateway(u) && !u.pathname.startsWith('/.auth/');
  await step('signing in at the IdP and coming back to the gateway', () =>
    Promise.all([page.waitForURL(back, { waitUntil: 'load' }), page.getByRole('button', { name: 'Sign in', exact: true }).click()]));

  if (args['expect-refusal']) {
    await shot('03-refused.png');
    const status = lastMain ? lastMain.status() : 0;
    const text = await page.locator('body').innerText();
    const problems = [];
    if (status < 400 || status > 499) problems.push(`the gateway answered ${status}, expected a 4xx refusal`);
    if (args['expect-status'] && String(status) !== args['expect-status']) problems.push(`status ${status}, expected ${args['expect-status']}`);
    if (!text.includes(args['expect-refusal'])) problems.push(`the page does not say ${JSON.stringify(args['expect-refusal'])}`);
    if (problems.length > 0) await fail(problems);
  } else {
    await shot('03-landed.png');
    if (page.url() !== start.href) await fail(`landed on ${page.url()}, expected ${start.href}`);
    const rows = await page.$$eval('tbody tr', (trs) =>
      trs
        .map((tr) => {
          const th = tr.querySelector('th');
          const td = tr.querySelector('td');
          return th ? [th.textContent.trim().toLowerCase(), td && td.firstChild ? td.firstChild.textContent : ''] : null;
        })
        .filter(Boolean));
    const received = new Map();
    for (const [name, value] of rows) received.set(name, [...(received.get(name) || []), value]);
    const problems = [];
    if (received.size === 0) problems.push('the landed page shows no header table (is the demo app behind the gateway?)');
    for (const e of expectations) {
      const values = received.get(e.name);
      if (!values) problems.push(`header ${e.name} did not reach the app (expected ${e.spec})`);
      else if (e.op === 'present' && values.every((v) => v === '')) problems.push(`header ${e.name} is empty`);
      else if (e.op === 'equals' && !values.includes(e.value)) problems.push(`header ${e.name} is ${JSON.stringify(values)}, expected ${JSON.stringify(e.value)}`);
      else if (e.op === 'contains' && !values.some((v) => v.includes(e.value))) problems.push(`header ${e.name} is ${JSON.stringify(values)}, expected it to contain ${JSON.stringify(e.value)}`);
    }
    if (problems.length > 0) await fail(problems);
  }

  // 3. Optionally: sign out at the IdP; the gateway session must end with it.
  if (args['then-idp-logout']) {
    await step(`opening the IdP sign-out ${args['then-idp-logout']}`, () => page.goto(args['then-idp-logout'], { waitUntil: 'load' }));
    await step(`waiting for a page saying ${JSON.stringify(args['signed-out-text'])}`, () =>
      page.getByText(args['signed-out-text']).first().waitFor({ state: 'visible' }));
    await shot('04-signed-out.png');
    await step(`opening ${start.href} after signing out`, () => page.goto(start.href, { waitUntil: 'load' }));
    await shot('05-after-logout.png');
    if (page.url() === start.href) await fail('after signing out at the IdP the protected URL was still served without signing in');
  }

  const final = page.url();
  await browser.close();
  process.stdout.write(`OK ${final}\n`);
  process.exit(0);
} catch (err) {
  await fail(`unexpected error: ${err.message.split('\n')[0]}`);
}
