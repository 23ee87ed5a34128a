#!/usr/bin/env node
// Takes a screenshot of one page with Debian's chromium (playwright-core): used for
// docs/screenshots and to look at the login and error pages as a person would.
//
// CLI CONTRACT
//   node tests/node/screenshot.mjs URL OUT.png [--width 1280] [--height 800]
//                                  [--full-page] [--expect-status N] [--timeout-ms 15000]
//
//   URL              http(s):// or file:// page.
//   OUT.png          written (parent directory created).
//   --width/--height viewport in CSS pixels (e.g. 390x844 for a phone).
//   --full-page      capture the whole scrollable page, not only the viewport.
//   --expect-status  fail unless the HTTP status is N (http(s) URLs only; default: any).
//   --header 'Name: value'  repeatable: sent with every request (e.g. to show the demo
//                    app with identity headers).
//   stdout           `OK <OUT.png>`.
//   exit             0 written, 1 failed (reason on stderr), 2 bad command line.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';

import { die, launch, watchdog } from './lib/browser.mjs';

const SCRIPT = 'screenshot.mjs';

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      width: { type: 'string', default: '1280' },
      height: { type: 'string', default: '800' },
      'full-page': { type: 'boolean', default: false },
      'expect-status': { type: 'string' },
      header: { type: 'string', multiple: true, default: [] },
      'timeout-ms': { type: 'string', default: '15000' },
    },
    strict: true,
  });
} catch (err) {
  die(SCRIPT, `${err.message} (usage: screenshot.mjs URL OUT.png [options])`, 2);
}
const { values: args, positionals } = parsed;
if (positionals.length !== 2) die(SCRIPT, 'usage: screenshot.mjs URL OUT.png [options]', 2);
const [url, out] = positionals;
const width = Number.parseInt(args.width, 10);
const height = Number.parseInt(args.height, 10);
const timeout = Number.parseInt(args['timeout-ms'], 10);
if (!(width > 0) || !(height > 0) || !(timeout > 0)) die(SCRIPT, 'width, height and timeout must be positive numbers', 2);
const extraHTTPHeaders = {};
for (const h of args.header) {
  const at = h.indexOf(':');
  if (at < 1) die(SCRIPT, `--header ${h}: expected 'Name: value'`, 2);
  extraHTTPHeaders[h.slice(0, at).trim()] = h.slice(at + 1).trim();
}

watchdog(SCRIPT, timeout * 3);
const browser = await launch(SCRIPT, timeout);
try {
  const page = await browser.newPage({ viewport: { width, height }, ignoreHTTPSErrors: true, extraHTTPHeaders });
  page.setDefaultTimeout(timeout);
  const response = await page.goto(url, { waitUntil: 'load', timeout });
  if (args['expect-status'] && response && response.status() !== Number(args['expect-status'])) {
    throw new Error(`status ${response.status()}, expected ${args['expect-status']}`);
  }
  mkdirSync(dirname(out), { recursive: true });
  await page.screenshot({ path: out, fullPage: args['full-page'] });
  await browser.close();
  process.stdout.write(`OK ${out}\n`);
  process.exit(0);
} catch (err) {
  await browser.close().catch(() => {});
  die(SCRIPT, `${url}: ${err.message.split('\n')[0]}`);
}
