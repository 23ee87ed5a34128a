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

watchdog(SCRIPT, timeout * 3);
const browser = await launch(SCRIPT, timeout);
try {
  const page = await browser.newPage({ viewport: { width, height }, ignoreHTTPSErrors: true });
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
