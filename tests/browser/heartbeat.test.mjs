// The JavaScript client's failure paths against a real stack (redis-server,
// a node with a 1 s heartbeat, the demo service), each bounded in time:
//   - in Node.js, over the `ws` package: the node selects freeim.heartbeat.v1
//     and sends its interval; the client stays connected across heartbeats;
//   - in headless Chromium, a token request that never answers: after
//     preConnectTimeout the client asks again and connects;
//   - in headless Chromium, a silent dead path: a TCP relay between page and
//     node stops forwarding both ways without closing anything; the client
//     gives the socket up within 1.5 intervals + 1 s, reconnects, and then
//     receives a message sent after the reconnection.
//
// Run through scripts/browser-test.sh (it installs Chromium and the npm
// packages, builds the binaries and sets FREEIM_BIN_DIR).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { clientPage, launchChromium, startStack } from './stack.mjs';

const require = createRequire(import.meta.url);
const FreeImClient = require('../../demo/static/freeim-client.js');

const BIN_DIR = process.env.FREEIM_BIN_DIR;
const INTERVAL = 1000; // the node's --heartbeat-interval, ms
const SILENCE_ALLOWED = INTERVAL * 1.5 + 1000; // the client's watchdog
const SLACK = 1500; // timers of a loaded machine
const STEP = 15000; // longest wait for any one thing to show up

let stack;
let browser;
const relays = [];

before(async () => {
  assert.ok(BIN_DIR, 'FREEIM_BIN_DIR must name the directory holding freeim-server and freeim-demo');
  stack = await startStack(BIN_DIR, { nodeArgs: ['--heartbeat-interval', '1s', '--heartbeat-timeout', '2s'] });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  for (const relay of relays) relay.close();
  if (stack) stack.stop();
});

/** POSTs JSON to the demo service and returns its JSON answer. */
async function demo(path, body) {
  const res = await fetch(new URL(path, stack.url), { method: 'POST', body: JSON.stringify(body) });
  assert.equal(res.status, 200, `${path}: ${res.status}`);
  return res.json();
}

/**
 * A TCP relay on a free loopback port to `targetPort`. `freeze()` stops
 * forwarding both ways and closes nothing: to both ends, the path goes
 * silent, as when a phone changes networks.
 */
function startRelay(targetPort) {
  const sockets = new Set();
  let frozen = false;
  const server = createServer((inbound) => {
    const outbound = connect(targetPort, '127.0.0.1');
    for (const [from, to] of [[inbound, outbound], [outbound, inbound]]) {
      sockets.add(from);
      from.on('data', (chunk) => { if (!frozen) to.write(chunk); });
      from.on('end', () => { if (!frozen) to.end(); });
      from.on('error', () => { if (!frozen) to.destroy(); });
    }
  });
  const relay = {
    listening: new Promise((resolve) => server.listen(0, '127.0.0.1', resolve)),
    port: () => server.address().port,
    freeze() {
      frozen = true;
      for (const socket of sockets) socket.pause();
    },
    close() {
      server.close();
      for (const socket of sockets) socket.destroy();
    },
  };
  relays.push(relay);
  return relay;
}

async function newPage() {
  if (!browser) browser = await launchChromium();
  return clientPage(browser, stack);
}

/**
 * Starts a FreeImClient in `page` that logs every event to `window.log`.
 * Its preConnect asks the demo for a URL (the same client id every time);
 * `hangFirst`: the first call never settles; `relay`: the first URL goes
 * through that port instead of the node's.
 */
async function startPageClient(page, { hangFirst = false, relay = null, preConnectTimeout = 10000 }) {
  await page.evaluate(([hangFirst, from, to, preConnectTimeout]) => {
    window.log = [];
    let calls = 0;
    window.client = new window.FreeImClient({
      preConnect: async () => {
        calls += 1;
        if (calls === 1 && hangFirst) return new Promise(() => {});
        const res = await fetch('/prev-connect', {
          method: 'POST',
          body: JSON.stringify(window.me ? { id: window.me } : { name: 'heartbeat' }),
        });
        const answer = await res.json();
        window.me = answer.id;
        return calls === 1 && from ? answer.url.replace(from, to) : answer.url;
      },
      preConnectTimeout,
      minDelay: 100,
      maxDelay: 500,
      jitter: 0,
    });
    for (const event of ['open', 'close', 'error', 'message']) {
      window.client.on(event, (arg) => {
        window.log.push({ at: Date.now(), event, arg: event === 'error' ? arg.message : arg });
      });
    }
    window.client.connect();
  }, [hangFirst, relay && relay[0], relay && relay[1], preConnectTimeout]);
}

const events = (page, name) => page.evaluate((name) => window.log.filter((e) => e.event === name), name);

async function waitForEvents(page, name, count, timeout = STEP) {
  await page.waitForFunction(([name, count]) => window.log.filter((e) => e.event === name).length >= count,
    [name, count], { timeout });
  return events(page, name);
}

test('Node.js over ws: the node selects the heartbeat and sends its interval', { timeout: 60000 }, async () => {
  const selected = [];
  const binaryFrames = [];
  class SpyWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.on('open', () => selected.push(this.protocol));
      this.on('message', (data, isBinary) => {
        if (isBinary) binaryFrames.push(Buffer.from(data).toString());
      });
    }
  }
  let me = null;
  const client = new FreeImClient({
    preConnect: async () => {
      const answer = await demo('/prev-connect', me ? { id: me } : { name: 'node' });
      me = answer.id;
      return answer.url;
    },
    WebSocket: SpyWebSocket,
  });
  const seen = { open: [], close: [], message: [] };
  for (const event of Object.keys(seen)) client.on(event, (arg) => seen[event].push(arg));
  try {
    const opened = new Promise((resolve) => client.on('open', resolve));
    client.connect();
    await opened;
    assert.deepEqual(selected, ['freeim.heartbeat.v1']);
    // The interval after the 101, then one with each ping (~1 s apart).
    await new Promise((r) => setTimeout(r, 3 * INTERVAL + 500));
    assert.ok(binaryFrames.length >= 3, `binary frames: ${binaryFrames}`);
    assert.ok(binaryFrames.every((f) => f === String(INTERVAL)), `binary frames: ${binaryFrames}`);
    assert.equal(seen.close.length, 0, 'the watchdog never fired');
    assert.equal(client.state, 'open');
    const received = new Promise((resolve) => client.on('message', (data) => {
      if (data.text === 'to node') resolve();
    }));
    await demo('/broadcast', { text: 'to node' });
    await received;
    assert.ok(seen.message.every((data) => typeof data === 'object'), 'binary frames are not messages');
  } finally {
    client.close();
  }
});

test('Chromium: a token request that never answers is given up and retried', { timeout: 60000 }, async () => {
  const page = await newPage();
  const started = Date.now();
  await startPageClient(page, { hangFirst: true, preConnectTimeout: 1000 });
  const [open] = await waitForEvents(page, 'open', 1);
  assert.ok(open.at - started >= 1000, 'not before preConnectTimeout');
  assert.ok(open.at - started < 1000 + SLACK + 2000, `connected after ${open.at - started} ms`);
  const errors = (await events(page, 'error')).map((e) => e.arg);
  assert.match(errors[0], /preConnect failed: no answer within 1000 ms/);
  const closes = (await events(page, 'close')).map((e) => e.arg);
  assert.deepEqual(closes.map((c) => [c.code, c.reason, c.wasOpen]), [[1006, 'preConnect failed', false]]);
  await page.evaluate(() => window.client.close());
  await page.close();
});

test('Chromium: a silent dead path is noticed, and the client reconnects', { timeout: 90000 }, async () => {
  const relay = startRelay(stack.node.port);
  await relay.listening;
  const page = await newPage();
  const nodeAddress = `127.0.0.1:${stack.node.port}`;
  await startPageClient(page, { relay: [nodeAddress, `127.0.0.1:${relay.port()}`] });
  await waitForEvents(page, 'open', 1);
  // Heartbeats flow through the relay: the socket outlives the watchdog.
  await page.waitForTimeout(SILENCE_ALLOWED + INTERVAL);
  assert.deepEqual(await events(page, 'close'), [], 'no close while the path is alive');

  const frozenAt = Date.now();
  relay.freeze();
  const [lost] = await waitForEvents(page, 'close', 1, SILENCE_ALLOWED + SLACK + 5000);
  const noticedAfter = lost.at - frozenAt;
  assert.deepEqual([lost.arg.code, lost.arg.reason, lost.arg.wasOpen], [4000, 'heartbeat timeout', true]);
  assert.ok(noticedAfter < SILENCE_ALLOWED + SLACK, `noticed ${noticedAfter} ms after the freeze`);

  // The next attempt goes straight to the node, and gets what is sent now.
  await waitForEvents(page, 'open', 2);
  await demo('/broadcast', { text: 'after the reconnect' });
  await page.waitForFunction(
    () => window.log.some((e) => e.event === 'message' && e.arg.text === 'after the reconnect'),
    null, { timeout: STEP });
  assert.equal((await events(page, 'close')).length, 1);
  await page.evaluate(() => window.client.close());
  await page.close();
});
