// The README's JavaScript example, run as written in a page of the demo's
// origin in headless Debian Chromium (what a reader pasting it would get):
// it connects, logs a pushed message, and logs the kick of force_offline.
//
// Run through scripts/browser-test.sh (it installs Chromium and the npm
// packages, builds the binaries and sets FREEIM_BIN_DIR).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { startStack } from './stack.mjs';

const BIN_DIR = process.env.FREEIM_BIN_DIR;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const README = resolve(import.meta.dirname ?? '.', '../../README.md');
const STEP = 15000; // longest wait for any one thing to show up

let stack;
let browser;

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (stack) stack.stop();
});

/** The README's fenced `js` blocks. */
function readmeJsBlocks() {
  const blocks = [...readFileSync(README, 'utf8').matchAll(/^```js\n([\s\S]*?)^```$/gm)];
  return blocks.map((m) => m[1]);
}

async function post(path, body) {
  const res = await fetch(new URL(path, stack.url), { method: 'POST', body: JSON.stringify(body) });
  const text = await res.text();
  assert.equal(res.status, 200, `${path}: ${text}`);
  return JSON.parse(text);
}

test('the README JavaScript example runs as written in a page', { timeout: 120000 }, async () => {
  assert.ok(BIN_DIR, 'FREEIM_BIN_DIR is set (run through scripts/browser-test.sh)');
  const blocks = readmeJsBlocks();
  assert.equal(blocks.length, 1, 'the README has one JavaScript example');

  stack = await startStack(BIN_DIR);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage();
  const logged = [];
  page.on('console', async (msg) => {
    const values = await Promise.all(msg.args().map((a) => a.jsonValue().catch(() => undefined)));
    logged.push(values);
  });
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  const seen = (wanted) => logged.some(wanted);
  const waitFor = async (what, wanted) => {
    const deadline = Date.now() + STEP;
    while (!seen(wanted)) {
      assert.ok(Date.now() < deadline, `the example never logged ${what}; logged ${JSON.stringify(logged)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  // A page of the demo's origin with the client script, as the README's
  // "/freeim-client.js" is served; then the example itself.
  await page.goto(new URL('/health', stack.url).href);
  await page.addScriptTag({ url: new URL('/freeim-client.js', stack.url).href });
  await page.addScriptTag({ content: blocks[0] });
  await waitFor('"connected"', ([v]) => v === 'connected');

  await post('/broadcast', { text: 'hello readme' });
  await waitFor('the pushed message', ([v]) => v && v.text === 'hello readme');

  // The page's id: the only client online.
  const online = await (await fetch(new URL('/online', stack.url))).json();
  assert.equal(online.clients.length, 1, JSON.stringify(online));
  await post('/force-offline', { id: online.clients[0].id });
  await waitFor('the kick', ([v]) => v === 'signed in elsewhere');
  assert.deepEqual(pageErrors, [], 'no page errors');
});
