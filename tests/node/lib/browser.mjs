// Shared by the browser scripts: launch Debian's chromium through playwright-core with
// bounded timeouts, and fail with one clear line.

import { existsSync } from 'node:fs';

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** Prints `<script>: <message>` on stderr and exits with `code`. */
export function die(script, message, code = 1) {
  process.stderr.write(`${script}: ${message}\n`);
  process.exit(code);
}

/** Kills the process after `ms` whatever it is doing: every run is bounded. */
export function watchdog(script, ms) {
  const timer = setTimeout(() => die(script, `gave up after ${ms} ms (overall timeout)`), ms);
  timer.unref();
}

export async function launch(script, timeoutMs) {
  if (!existsSync(CHROMIUM)) {
    die(script, `${CHROMIUM} not found: install Debian's chromium (scripts/test.sh does) or set CHROMIUM_PATH`);
  }
  try {
    return await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      timeout: timeoutMs,
    });
  } catch (err) {
    return die(script, `cannot start ${CHROMIUM}: ${err.message.split('\n')[0]}`);
  }
}
