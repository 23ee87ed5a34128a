#!/usr/bin/env node
// Walks a page with the keyboard only, in Debian's chromium (playwright-core), and
// reports what gets focus and whether the focus is visible: the accessibility checks
// that need a real browser (autofocus, tab order, focus outline, contrast of the
// focused element's text).
//
// CLI CONTRACT
//   node tests/node/keyboard.mjs URL [--tabs N] [--timeout-ms 15000]
//
//   URL        http(s):// or file:// page.
//   --tabs N   how many times to press Tab after load (default 5).
//   stdout     one JSON document:
//              { "lang": "<html lang>",
//                "focus": [ { "tag", "id", "type", "name", "text", "outline" }, ... ] }
//              focus[0] is the element focused on load (autofocus), then one entry per
//              Tab. "name" is the accessible name as a user hears it (label text for
//              inputs), "outline" the computed `outline` while focused by keyboard.
//   exit       0 reported, 1 failed (reason on stderr), 2 bad command line.

import { parseArgs } from 'node:util';

import { die, launch, watchdog } from './lib/browser.mjs';

const SCRIPT = 'keyboard.mjs';

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      tabs: { type: 'string', default: '5' },
      'timeout-ms': { type: 'string', default: '15000' },
    },
    strict: true,
  });
} catch (err) {
  die(SCRIPT, `${err.message} (usage: keyboard.mjs URL [--tabs N])`, 2);
}
const { values: args, positionals } = parsed;
if (positionals.length !== 1) die(SCRIPT, 'usage: keyboard.mjs URL [--tabs N]', 2);
const tabs = Number.parseInt(args.tabs, 10);
const timeout = Number.parseInt(args['timeout-ms'], 10);
if (!(tabs >= 0) || !(timeout > 0)) die(SCRIPT, '--tabs and --timeout-ms must be numbers', 2);

watchdog(SCRIPT, timeout * 3);
const browser = await launch(SCRIPT, timeout);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(timeout);
  await page.goto(positionals[0], { waitUntil: 'load', timeout });
  // Chromium applies `autofocus` in a rendering step after `load`, later on
  // a busy machine: wait (bounded) until the autofocus element has the focus.
  await page.waitForFunction(
    () => {
      const wanted = document.querySelector('[autofocus]');
      return !wanted || document.activeElement === wanted;
    },
    null,
    { timeout },
  );
  const focused = () =>
    page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      const labels = el.labels ? [...el.labels].map((l) => l.textContent.trim()).join(' ') : '';
      const style = getComputedStyle(el);
      return {
        tag: el.tagName.toLowerCase(),
        id: el.id || null,
        type: el.getAttribute('type'),
        name: labels || el.getAttribute('aria-label') || el.textContent.trim(),
        text: el.textContent.trim(),
        outline: `${style.outlineStyle} ${style.outlineWidth} ${style.outlineColor}`,
      };
    });
  const focus = [await focused()];
  for (let i = 0; i < tabs; i += 1) {
    await page.keyboard.press('Tab');
    focus.push(await focused());
  }
  const lang = await page.evaluate(() => document.documentElement.lang);
  await browser.close();
  process.stdout.write(`${JSON.stringify({ lang, focus })}\n`);
  process.exit(0);
} catch (err) {
  await browser.close().catch(() => {});
  die(SCRIPT, `${positionals[0]}: ${err.message.split('\n')[0]}`);
}
