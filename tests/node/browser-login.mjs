#!/usr/bin/env node
// Signs in through realmgate with a real browser (Debian chromium driven by
// playwright-core) and checks what the app behind it received.
//
// CLI CONTRACT
//   node tests/node/browser-login.mjs --url URL [options]
//
//   --url URL               a protected URL on the gateway (e.g. http://127.0.0.1:PORT/reports?q=1).
//   --email EMAIL           typed into the gateway's sign-in page (the field labelled
//                           "Email address", then "Continue"). Without it the gateway is
//                           expected to skip its page and redirect straight to a provider.
//   --login LOGIN           what to sign in as on the provider's page (default: EMAIL).
//   --password PW           for providers with a password field (default: "test-password").
//   --landed-url URL        where the browser must end up (default: the --url value).
//   --expect-header SPEC    repeatable. Checked against the headers table of the landed
//                           page (the demo app, src/demo/app.rs):
//                             NAME=VALUE   the header has exactly this value
//                             NAME~TEXT    the header's value contains TEXT
//                             NAME         the header is present and not empty
//                           NAME is case-insensitive.
//   --expect-absent NAME    repeatable: the header must not reach the app.
//   --expect-text TEXT      repeatable: the landed page's text contains TEXT.
//   --then-back-and-pick-again
//                           after landing, go Back (at most 4 steps) to the provider's
//                           page and sign in there again as LOGIN (as a person who picks
//                           the account a second time): the browser must land on the
//                           landed URL again, signed in, never on "Sign-in expired".
//                           Needs --email or --login. Screenshot 07-picked-again.png.
//   --then-login-page WHO   after landing, open /.auth/login?post_login_redirect_uri=<the
//                           landed path and query>: it must say "You are signed in" and
//                           WHO, offer "Continue" and "Use another account" and show no
//                           email field; Continue must lead to the landed URL; opened
//                           again, "Use another account" must show the field labelled
//                           "Email address". Screenshots 08-signed-in.png,
//                           09-another-account.png.
//   --then-me-group NAME    repeatable: after landing, open /.auth/me in the browser; its
//                           JSON `group_names` must have NAME among its values.
//   (the --then-* checks run in the order listed here, all before --then-logout)
//   --then-logout           afterwards open /.auth/logout on the gateway, confirm at the
//                           provider if it asks, expect to end up back on the gateway, then
//                           expect the protected --url to ask for sign-in again; the
//                           signed-out page must not show an error status ("Error 200").
//   --screenshots DIR       write 01-login.png (gateway page), 02-provider-N.png (each
//                           provider page), 03-landed.png, with --then-logout also
//                           04-logout-provider-N.png, 05-signed-out.png and
//                           06-after-logout.png; failure.png on failure.
//   --timeout-ms MS         per step (navigation, click, fill) timeout (default 15000).
//   --total-timeout-ms MS   the whole run (default 90000).
//
//   realmgate's password form (LDAP connections): the user name must be pre-filled with
//   LOGIN; --password is typed and sent with Enter; 02-password.png is its screenshot.
//   Provider pages handled: oidc-provider's development login form (fields `login` and
//   `password`), and any page offering a button or link whose text contains LOGIN (the
//   demo IdP's user picker); a logout confirmation (`button[name=logout][value=yes]`)
//   or any other page with a submit button (consent) gets it clicked. At most 6
//   provider pages per phase.
//
//   stdout   `OK <landed url>` on success, nothing else.
//   stderr   on failure, every failed expectation (one per line), the current URL,
//            title and the start of the page text.
//   exit     0 success, 1 a check or the flow failed, 2 bad command line.
//
// HTTPS errors are ignored (tests use self-signed certificates). Every wait is bounded.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { die, launch, watchdog } from './lib/browser.mjs';

const SCRIPT = 'browser-login.mjs';

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      url: { type: 'string' },
      email: { type: 'string' },
      login: { type: 'string' },
      password: { type: 'string', default: 'test-password' },
      'landed-url': { type: 'string' },
      'expect-header': { type: 'string', multiple: true, default: [] },
      'expect-absent': { type: 'string', multiple: true, default: [] },
      'expect-text': { type: 'string', multiple: true, default: [] },
      'then-back-and-pick-again': { type: 'boolean', default: false },
      'then-login-page': { type: 'string' },
      'then-me-group': { type: 'string', multiple: true, default: [] },
      'then-logout': { type: 'boolean', default: false },
      screenshots: { type: 'string' },
      'timeout-ms': { type: 'string', default: '15000' },
      'total-timeout-ms': { type: 'string', default: '90000' },
    },
    strict: true,
  }));
} catch (err) {
  die(SCRIPT, `${err.message} (see the header of this file for the options)`, 2);
}

if (!args.url) die(SCRIPT, '--url is required', 2);
let start;
try {
  start = new URL(args.url);
} catch {
  die(SCRIPT, `--url ${args.url} is not a URL`, 2);
}
const landedUrl = new URL(args['landed-url'] || args.url).href;
const stepTimeout = Number.parseInt(args['timeout-ms'], 10);
const totalTimeout = Number.parseInt(args['total-timeout-ms'], 10);
if (!(stepTimeout > 0) || !(totalTimeout > 0)) die(SCRIPT, 'timeouts must be positive numbers of milliseconds', 2);
const login = args.login || args.email;
if (args['then-back-and-pick-again'] && !login) die(SCRIPT, '--then-back-and-pick-again needs --email or --login (the account to pick again)', 2);

const expectations = args['expect-header'].map((spec) => {
  const at = spec.search(/[=~]/);
  if (at === 0) die(SCRIPT, `--expect-header ${spec}: missing header name`, 2);
  if (at < 0) return { spec, name: spec.toLowerCase(), op: 'present' };
  return {
    spec,
    name: spec.slice(0, at).trim().toLowerCase(),
    op: spec[at] === '=' ? 'equals' : 'contains',
    value: spec.slice(at + 1),
  };
});

watchdog(SCRIPT, totalTimeout);
if (args.screenshots) mkdirSync(args.screenshots, { recursive: true });

const browser = await launch(SCRIPT, stepTimeout);
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });
const page = await context.newPage();
page.setDefaultTimeout(stepTimeout);
page.setDefaultNavigationTimeout(stepTimeout);
// Navigation history for failure reports: every main-frame response and failed request.
const trail = [];
page.on('response', (r) => {
  if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) trail.push(`${r.status()} ${r.request().method()} ${r.url()}`);
});
page.on('requestfailed', (r) => trail.push(`FAILED ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));

async function shot(name) {
  if (args.screenshots) await page.screenshot({ path: join(args.screenshots, name), fullPage: true });
}

async function fail(problems) {
  const lines = Array.isArray(problems) ? problems : [problems];
  let context = '';
  try {
    await shot('failure.png');
    const title = await page.title();
    const text = (await page.locator('body').innerText({ timeout: 2000 })).slice(0, 1500);
    context = `\n  at ${page.url()}\n  title: ${title}\n  page text:\n${text.replace(/^/gm, '    ')}`;
    context += `\n  navigation (last 12):\n${trail.slice(-12).map((t) => `    ${t}`).join('\n')}`;
  } catch {
    context = `\n  at ${page.url()}`;
  }
  await browser.close().catch(() => {});
  die(SCRIPT, `${lines.join('\n')}${context}`);
}

const onGateway = () => new URL(page.url()).origin === start.origin;
const onGatewayAuth = () => onGateway() && new URL(page.url()).pathname.startsWith('/.auth/');

/** Runs `action` and waits until the URL is no longer `before`. */
async function andNavigate(action, what) {
  const before = page.url();
  try {
    await Promise.all([page.waitForURL((u) => u.href !== before, { waitUntil: 'load' }), action()]);
  } catch (err) {
    await fail(`${what}: the page did not move on from ${before} (${err.message.split('\n')[0]})`);
  }
}

/** Deals with the provider's pages until the browser is back on the gateway. */
async function walkProvider(shotPrefix) {
  for (let step = 1; !onGateway(); step += 1) {
    if (step > 6) await fail('still on the provider after 6 pages');
    await shot(`${shotPrefix}-${step}.png`);
    const loginField = page.locator('input[name="login"]');
    if ((await loginField.count()) > 0 && (await loginField.first().isVisible())) {
      if (!login) await fail('the provider asks for a login but neither --login nor --email was given');
      await loginField.first().fill(login);
      const password = page.locator('input[type="password"]');
      if ((await password.count()) > 0) await password.first().fill(args.password);
      await andNavigate(() => page.locator('form button[type="submit"], form input[type="submit"]').first().click(), 'submitting the provider login');
      continue;
    }
    const pick = login
      ? page.locator('button, a, input[type="submit"]').filter({ hasText: login })
      : page.locator('nothing-to-pick');
    if (login && (await pick.count()) > 0) {
      await andNavigate(() => pick.first().click(), `picking ${login} on the provider page`);
      continue;
    }
    const confirm = page.locator('button[name="logout"][value="yes"], button[type="submit"], input[type="submit"], form button:not([type])');
    if ((await confirm.count()) > 0) {
      await andNavigate(() => confirm.first().click(), 'confirming on the provider page');
      continue;
    }
    await fail('stuck on a provider page with nothing to fill in or click');
  }
}

try {
  // 1. The protected URL: expect the gateway's sign-in page (or a redirect past it).
  const response = await page.goto(start.href, { waitUntil: 'load' });
  if (!response) await fail(`no response for ${start.href}`);

  if (onGateway() && !new URL(page.url()).pathname.startsWith('/.auth/login') && page.url() === landedUrl) {
    await fail('the protected URL was served without signing in');
  }

  if (onGatewayAuth()) {
    await shot('01-login.png');
    const email = page.getByLabel('Email address');
    if (args.email) {
      if ((await email.count()) !== 1) await fail('expected the gateway sign-in page with one field labelled "Email address"');
      await email.fill(args.email);
      await andNavigate(() => page.getByRole('button', { name: 'Continue' }).click(), 'submitting the email');
    } else {
      await fail('the gateway showed its sign-in page but no --email was given');
    }
  } else if (args.email) {
    await fail('expected the gateway sign-in page, but the browser went elsewhere');
  }

  // 1b. realmgate's own password form (LDAP connections): the user name is
  // pre-filled from the email; the password is typed and sent with Enter.
  if (onGatewayAuth() && (await page.getByLabel('Password', { exact: true }).count()) === 1) {
    await shot('02-password.png');
    const user = page.getByLabel('User name');
    if ((await user.count()) !== 1) await fail('the password form has no field labelled "User name"');
    if (login && (await user.inputValue()) !== login) await fail(`the user name was not pre-filled with ${login}`);
    const password = page.getByLabel('Password', { exact: true });
    await password.fill(args.password);
    await andNavigate(() => password.press('Enter'), 'submitting the password form with Enter');
  }

  // 2. The provider's pages, until the browser is back on the gateway.
  await walkProvider('02-provider');

  // 3. Back on the gateway: the callback redirects to the saved target.
  if (onGatewayAuth()) {
    try {
      await page.waitForURL((u) => !u.pathname.startsWith('/.auth/'), { waitUntil: 'load' });
    } catch {
      await fail('the gateway did not send the browser on from its callback');
    }
  }
  await shot('03-landed.png');
  if (page.url() !== landedUrl) await fail(`landed on ${page.url()}, expected ${landedUrl}`);

  // 4. What the app received: the demo app's header tables.
  const rows = await page.$$eval('tbody tr', (trs) =>
    trs
      .map((tr) => {
        const th = tr.querySelector('th');
        const td = tr.querySelector('td');
        const value = td && td.firstChild ? td.firstChild.textContent : '';
        return th ? [th.textContent.trim().toLowerCase(), value] : null;
      })
      .filter(Boolean));
  const received = new Map();
  for (const [name, value] of rows) received.set(name, [...(received.get(name) || []), value]);

  const problems = [];
  if (received.size === 0) problems.push('the landed page shows no header table (is the demo app behind the gateway?)');
  for (const e of expectations) {
    const values = received.get(e.name);
    if (!values) {
      problems.push(`header ${e.name} did not reach the app (expected ${e.spec})`);
    } else if (e.op === 'present' && values.every((v) => v === '')) {
      problems.push(`header ${e.name} is empty`);
    } else if (e.op === 'equals' && !values.includes(e.value)) {
      problems.push(`header ${e.name} is ${JSON.stringify(values)}, expected ${JSON.stringify(e.value)}`);
    } else if (e.op === 'contains' && !values.some((v) => v.includes(e.value))) {
      problems.push(`header ${e.name} is ${JSON.stringify(values)}, expected it to contain ${JSON.stringify(e.value)}`);
    }
  }
  for (const name of args['expect-absent']) {
    if (received.has(name.toLowerCase())) {
      problems.push(`header ${name.toLowerCase()} reached the app: ${JSON.stringify(received.get(name.toLowerCase()))}`);
    }
  }
  const text = await page.locator('body').innerText();
  for (const t of args['expect-text']) {
    if (!text.includes(t)) problems.push(`the landed page does not say ${JSON.stringify(t)}`);
  }
  if (problems.length > 0) await fail(problems);

  const landed = page.url();

  // 5a. Back to the provider's page, and the account picked again (first hour 6):
  // the gateway's sign-in for that attempt is spent, but this browser is signed
  // in, so it goes on to its target.
  if (args['then-back-and-pick-again']) {
    for (let back = 1; onGateway(); back += 1) {
      if (back > 4) await fail('Back 4 times from the landed page and still on the gateway, never on the provider');
      try {
        await page.goBack({ waitUntil: 'load' });
      } catch (err) {
        await fail(`going Back: ${err.message.split('\n')[0]}`);
      }
    }
    await walkProvider('07-provider-again');
    if (onGatewayAuth()) {
      try {
        await page.waitForURL((u) => !u.pathname.startsWith('/.auth/'), { waitUntil: 'load' });
      } catch {
        await fail('after picking the account again, the gateway did not send the browser on from its callback');
      }
    }
    await shot('07-picked-again.png');
    const again = await page.locator('body').innerText();
    if (/sign-in expired/i.test(again)) await fail('after picking the account again the gateway said "Sign-in expired"');
    if (page.url() !== landedUrl) await fail(`after picking the account again landed on ${page.url()}, expected ${landedUrl}`);
    if ((await page.$$('tbody tr')).length === 0) await fail('after picking the account again the app page shows no headers (not signed in?)');
  }

  // 5b. The sign-in page of a signed-in browser: who, Continue, Use another account.
  if (args['then-login-page'] !== undefined) {
    const target = new URL(landedUrl);
    const loginPage = `${start.origin}/.auth/login?post_login_redirect_uri=${encodeURIComponent(target.pathname + target.search)}`;
    const open = async () => {
      try {
        await page.goto(loginPage, { waitUntil: 'load' });
      } catch (err) {
        await fail(`opening ${loginPage}: ${err.message.split('\n')[0]}`);
      }
    };
    await open();
    await shot('08-signed-in.png');
    const problems = [];
    const body = await page.locator('body').innerText();
    if (!body.includes('You are signed in')) problems.push('the sign-in page of a signed-in browser does not say "You are signed in"');
    if (!body.includes(args['then-login-page'])) problems.push(`the sign-in page of a signed-in browser does not say who (${JSON.stringify(args['then-login-page'])})`);
    if ((await page.getByLabel('Email address').count()) !== 0) problems.push('the sign-in page of a signed-in browser shows the email field');
    const cont = page.getByRole('link', { name: 'Continue', exact: true });
    const other = page.getByRole('link', { name: 'Use another account', exact: true });
    if ((await cont.count()) !== 1) problems.push('no single "Continue" link');
    if ((await other.count()) !== 1) problems.push('no single "Use another account" link');
    if (problems.length > 0) await fail(problems);
    await andNavigate(() => cont.click(), 'clicking Continue');
    if (page.url() !== landedUrl) await fail(`Continue led to ${page.url()}, expected ${landedUrl}`);
    await open();
    await andNavigate(() => other.click(), 'clicking "Use another account"');
    await shot('09-another-account.png');
    const email = page.getByLabel('Email address');
    if ((await email.count()) !== 1 || !(await email.first().isVisible())) {
      await fail('"Use another account" did not show the field labelled "Email address"');
    }
  }

  // 5c. /.auth/me as the browser gets it: group names beside the ids.
  if (args['then-me-group'].length > 0) {
    let me;
    try {
      const resp = await page.goto(`${start.origin}/.auth/me`, { waitUntil: 'load' });
      if (!resp || resp.status() !== 200) await fail(`/.auth/me answered ${resp ? resp.status() : 'nothing'}`);
      me = JSON.parse(await resp.text());
    } catch (err) {
      await fail(`reading /.auth/me: ${err.message.split('\n')[0]}`);
    }
    const names = me && typeof me.group_names === 'object' && me.group_names !== null ? Object.values(me.group_names) : null;
    if (!names) await fail(`/.auth/me has no group_names object: ${JSON.stringify(me).slice(0, 500)}`);
    const missing = args['then-me-group'].filter((n) => !names.includes(n));
    if (missing.length > 0) await fail(`/.auth/me group_names ${JSON.stringify(names)} lack ${JSON.stringify(missing)}`);
  }

  // 6. Optionally sign out and check that the session is gone.
  if (args['then-logout']) {
    try {
      await page.goto(`${start.origin}/.auth/logout`, { waitUntil: 'load' });
    } catch (err) {
      await fail(`opening /.auth/logout: ${err.message.split('\n')[0]}`);
    }
    await walkProvider('04-logout-provider');
    await shot('05-signed-out.png');
    // The signed-out page is no error (first hour 6): no "Error 200" on it.
    if (/error\s+2\d\d/i.test(await page.innerText('body').catch(() => ''))) {
      await fail(`the signed-out page at ${page.url()} calls itself an error`);
    }
    try {
      await page.goto(start.href, { waitUntil: 'load' });
    } catch (err) {
      await fail(`opening ${start.href} after logout: ${err.message.split('\n')[0]}`);
    }
    await shot('06-after-logout.png');
    if (page.url() === landedUrl) await fail('after logout the protected URL was still served without signing in');
  }

  await browser.close();
  process.stdout.write(`OK ${landed}\n`);
  process.exit(0);
} catch (err) {
  await fail(`unexpected error: ${err.message.split('\n')[0]}`);
}
