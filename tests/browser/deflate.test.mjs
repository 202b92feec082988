// permessage-deflate in a real browser: headless Chromium offers it on every
// WebSocket, the node accepts it (the socket's `extensions`), and a long
// broadcast reaches the page whole: compressed on the wire (the node's
// /metrics count the compression and the compressed delivery), inflated by
// the browser. The JS client in the same page gets it too.
//
// Run through scripts/browser-test.sh (it installs Chromium and the npm
// packages, builds the binaries and sets FREEIM_BIN_DIR).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { clientPage, freePort, launchChromium, startStack } from './stack.mjs';

const BIN_DIR = process.env.FREEIM_BIN_DIR;
const STEP = 15000; // longest wait for any one thing to show up

let stack;
let browser;
let adminPort;

before(async () => {
  assert.ok(BIN_DIR, 'FREEIM_BIN_DIR must name the directory holding freeim-server and freeim-demo');
  adminPort = await freePort();
  stack = await startStack(BIN_DIR, { nodeArgs: ['--admin', `127.0.0.1:${adminPort}`] });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (stack) stack.stop();
});

/** A counter from the node's /metrics. */
async function metric(name) {
  const body = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const line = body.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

test('Chromium negotiates permessage-deflate and inflates what the node compressed', { timeout: 60000 }, async () => {
  browser = await launchChromium();
  const page = await clientPage(browser, stack);
  const extensions = await page.evaluate(async () => {
    const connectUrl = async (name) => (await (await fetch('/prev-connect', {
      method: 'POST', body: JSON.stringify({ name }),
    })).json()).url;
    window.raw = [];
    window.viaClient = [];
    const ws = new WebSocket(await connectUrl('raw'));
    ws.onmessage = (e) => window.raw.push(JSON.parse(e.data));
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    const client = new window.FreeImClient({ preConnect: () => connectUrl('client') });
    client.on('message', (msg) => window.viaClient.push(msg));
    await new Promise((resolve) => { client.on('open', resolve); client.connect(); });
    return ws.extensions;
  });
  assert.match(extensions, /^permessage-deflate/);
  assert.match(extensions, /server_no_context_takeover/);

  const compressedBefore = await metric('freeim_messages_deflated_total');
  const text = 'a long broadcast, compressed once by the node for every page. '.repeat(25);
  const res = await fetch(new URL('broadcast', stack.url), { method: 'POST', body: JSON.stringify({ text }) });
  assert.equal(res.status, 200);
  for (const list of ['raw', 'viaClient']) {
    await page.waitForFunction((l) => window[l].some((m) => m.event === 'announcement' && m.text.length > 1000),
      list, { timeout: STEP });
  }
  const got = await page.evaluate(() => window.raw.find((m) => m.event === 'announcement').text);
  assert.equal(got, text);
  assert.ok(await metric('freeim_messages_deflated_total') >= compressedBefore + 2, 'both sockets got it compressed');
  assert.ok(await metric('freeim_compressions_total') >= 1);
  await page.close();
});
