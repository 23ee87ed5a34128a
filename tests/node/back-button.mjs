#!/usr/bin/env node
// Submits an email on realmgate's sign-in page, opens another page, then goes Back
// (Chromium, playwright-core): what a person sees after Back. Used to check that
// the page after an unknown-domain attempt came from a GET (POST-redirect-GET), so
// Back shows a page instead of Chromium's "Confirm Form Resubmission".
//
// CLI CONTRACT
//   node tests/node/back-button.mjs LOGIN_URL --email EMAIL [--timeout-ms 15000]
//
//   LOGIN_URL   the gateway's /.auth/login page (http://host:port/.auth/login).
//   stdout      one JSON object: {"after_submit": {"url", "text"}, "after_back":
//               {"url", "text", "error_page": bool}} — error_page is true when Back
//               landed on a Chromium error page (a POST result it would resubmit).
//   exit        0 printed, 1 failed (reason on stderr), 2 bad command line.

import { parseArgs } from 'node:util';

import { die, launch, watchdog } from './lib/browser.mjs';

const SCRIPT = 'back-button.mjs';
const USAGE = 'usage: back-button.mjs LOGIN_URL --email EMAIL [--timeout-ms MS]';

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      email: { type: 'string' },
      'timeout-ms': { type: 'string', default: '15000' },
    },
    strict: true,
  });
} catch (err) {
  die(SCRIPT, `${err.message} (${USAGE})`, 2);
}
const { values: args, positionals } = parsed;
if (positionals.length !== 1 || !args.email) die(SCRIPT, USAGE, 2);
const timeout = Number.parseInt(args['timeout-ms'], 10);
if (!(timeout > 0)) die(SCRIPT, '--timeout-ms must be a number', 2);

watchdog(SCRIPT, timeout * 4);
const browser = await launch(SCRIPT, timeout);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(timeout);
  const login = new URL(positionals[0]);
  await page.goto(login.href, { waitUntil: 'load' });
  await page.fill('input[name="email"]', args.email);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button[type="submit"]')]);
  const afterSubmit = { url: page.url(), text: await page.innerText('body') };
  // Somewhere else on the same site, then Back.
  await page.goto(`${login.origin}/.auth/keys`, { waitUntil: 'load' });
  let backError = null;
  try {
    await page.goBack({ waitUntil: 'load' });
  } catch (err) {
    backError = err.message.split('\n')[0];
  }
  const url = page.url();
  const text = await page.innerText('body').catch(() => '');
  const errorPage = backError !== null || url.startsWith('chrome-error:') || /ERR_CACHE_MISS|Confirm Form Resubmission/i.test(text);
  process.stdout.write(`${JSON.stringify({ after_submit: afterSubmit, after_back: { url, text, error_page: errorPage, back_error: backError } })}\n`);
  await browser.close();
  process.exit(0);
} catch (err) {
  await browser.close().catch(() => {});
  die(SCRIPT, `unexpected error: ${err.message.split('\n')[0]}`);
}
