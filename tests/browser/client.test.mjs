// Unit tests of demo/static/freeim-client.js with a scripted fake WebSocket:
// fresh URL per attempt, JSON decoding, backoff growth, jitter bounds,
// reset after a stable connection, close() stopping everything, the
// freeim.heartbeat.v1 watchdog, and handlers or WebSockets that throw.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const FreeImClient = require('../../demo/static/freeim-client.js');

/** A fake WebSocket: tests drive it through the `sockets` list. */
function fakeWebSocketClass() {
  const sockets = [];
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.protocol = '';
      this.binaryType = 'blob';
      this.closed = null;
      sockets.push(this);
    }
    /** Opens, with `protocol` as the subprotocol the node selected. */
    open(protocol = '') {
      this.protocol = protocol;
      this.onopen && this.onopen({});
    }
    push(text) { this.onmessage && this.onmessage({ data: text }); }
    /** A binary frame of `text`'s bytes, as an ArrayBuffer. */
    pushBinary(text) { this.onmessage && this.onmessage({ data: Uint8Array.from(Buffer.from(text)).buffer }); }
    drop(code = 1006, reason = '') { this.onclose && this.onclose({ code, reason }); }
    close(code, reason) { this.closed = { code, reason }; }
  }
  return { FakeWebSocket, sockets };
}

const tick = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(condition, ms = 2000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await tick(2);
  }
}

function makeClient(options = {}) {
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  let calls = 0;
  const client = new FreeImClient({
    preConnect: async () => `ws://node.test/ws?token=t${++calls}`,
    WebSocket: FakeWebSocket,
    minDelay: 20,
    maxDelay: 80,
    jitter: 0,
    ...options,
  });
  const seen = { message: [], open: [], close: [], error: [] };
  for (const event of Object.keys(seen)) client.on(event, (...args) => seen[event].push(args));
  return { client, sockets, seen, calls: () => calls };
}

test('asks for a fresh URL on every attempt and decodes JSON', async () => {
  const { client, sockets, seen } = makeClient();
  client.connect();
  await until(() => sockets.length === 1);
  assert.equal(sockets[0].url, 'ws://node.test/ws?token=t1');
  sockets[0].open();
  assert.equal(client.state, 'open');
  sockets[0].push('{"type":"chan","text":"hi"}');
  sockets[0].push('"plain string"');
  assert.deepEqual(seen.message.map(([data]) => data), [{ type: 'chan', text: 'hi' }, 'plain string']);
  assert.equal(seen.message[0][1], '{"type":"chan","text":"hi"}');

  sockets[0].push('not json');
  assert.equal(seen.error.length, 1);
  assert.match(seen.error[0][0].message, /not JSON/);
  assert.equal(seen.error[0][0].raw, 'not json');

  sockets[0].drop(1006);
  assert.equal(client.state, 'waiting');
  assert.equal(seen.close[0][0].wasOpen, true);
  assert.equal(seen.close[0][0].retryIn, 20);
  await until(() => sockets.length === 2);
  assert.equal(sockets[1].url, 'ws://node.test/ws?token=t2');
  client.close();
});

test('backs off exponentially up to maxDelay, then resets after a stable connection', async () => {
  const { client, sockets, seen } = makeClient({ stableAfter: 30 });
  client.connect();
  for (let i = 0; i < 4; i += 1) {
    await until(() => sockets.length === i + 1);
    sockets[i].drop(1006); // refused before opening
  }
  assert.deepEqual(seen.close.map(([info]) => info.retryIn), [20, 40, 80, 80]);
  await until(() => sockets.length === 5);
  sockets[4].open();
  assert.equal(seen.open.at(-1)[0].attempt, 4);
  await tick(40); // longer than stableAfter
  sockets[4].drop(1001, 'going away');
  const last = seen.close.at(-1)[0];
  assert.deepEqual([last.code, last.reason, last.retryIn], [1001, 'going away', 20]);
  client.close();
});

test('jitter keeps each delay within [base * (1 - jitter), base]', async () => {
  const { client, sockets, seen } = makeClient({ jitter: 0.5, minDelay: 40, maxDelay: 40 });
  client.connect();
  for (let i = 0; i < 6; i += 1) {
    await until(() => sockets.length === i + 1);
    sockets[i].drop();
  }
  for (const [info] of seen.close) assert.ok(info.retryIn >= 20 && info.retryIn <= 40, String(info.retryIn));
  client.close();
});

test('a failing preConnect is reported and retried', async () => {
  let calls = 0;
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const errors = [];
  const client = new FreeImClient({
    preConnect: async () => {
      calls += 1;
      if (calls < 3) throw new Error('503 Redis is unreachable');
      return 'ws://node.test/ws?token=ok';
    },
    WebSocket: FakeWebSocket,
    minDelay: 5,
    jitter: 0,
  });
  client.on('error', (err) => errors.push(err.message));
  client.connect();
  await until(() => sockets.length === 1);
  assert.equal(calls, 3);
  assert.equal(errors.length, 2);
  assert.match(errors[0], /preConnect failed: 503 Redis is unreachable/);
  client.close();
});

test('close() closes the socket and stops reconnecting', async () => {
  const { client, sockets, seen, calls } = makeClient();
  client.connect();
  await until(() => sockets.length === 1);
  sockets[0].open();
  client.close(4000, 'bye');
  assert.deepEqual(sockets[0].closed, { code: 4000, reason: 'bye' });
  assert.equal(client.state, 'closed');
  assert.equal(seen.close.at(-1)[0].retryIn, null);
  sockets[0].drop(); // late events from the old socket are ignored
  await tick(60);
  assert.equal(sockets.length, 1);
  assert.equal(calls(), 1);

  client.connect(); // a closed client can be started again
  await until(() => sockets.length === 2);
  client.close();
});

test('close() while waiting cancels the pending attempt', async () => {
  const { client, sockets, calls } = makeClient({ minDelay: 30 });
  client.connect();
  await until(() => sockets.length === 1);
  sockets[0].drop();
  client.close();
  await tick(80);
  assert.equal(calls(), 1);
  assert.equal(sockets.length, 1);
});

test('a handler that throws is reported as an error, others still run', async () => {
  const { client, sockets, seen } = makeClient();
  const got = [];
  client.on('message', () => { throw new Error('boom'); });
  const off = client.on('message', (data) => got.push(data));
  client.connect();
  await until(() => sockets.length === 1);
  sockets[0].open();
  sockets[0].push('1');
  assert.deepEqual(got, [1]);
  assert.match(seen.error[0][0].message, /'message' handler threw: boom/);
  off();
  sockets[0].push('2');
  assert.deepEqual(got, [1]);
  client.close();
});

test('rejects bad options and unknown events', () => {
  assert.throws(() => new FreeImClient({}), /preConnect/);
  const client = new FreeImClient({ preConnect: () => 'ws://x', WebSocket: class {} });
  assert.throws(() => client.on('mesage', () => {}), /unknown event/);
});

test('a preConnect that returns a non-ws URL is an error', async () => {
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const errors = [];
  const client = new FreeImClient({ preConnect: () => 'http://wrong', WebSocket: FakeWebSocket, minDelay: 1000 });
  client.on('error', (err) => errors.push(err.message));
  client.connect();
  await until(() => errors.length === 1);
  assert.match(errors[0], /not a ws:\/\/ or wss:\/\/ URL/);
  assert.equal(sockets.length, 0);
  client.close();
});

test('a kick (close 4001) stops reconnecting and emits kicked; connect() starts again', async () => {
  const { client, sockets, seen } = makeClient();
  const kicked = [];
  client.on('kicked', (info) => kicked.push(info));
  client.connect();
  await until(() => sockets.length === 1);
  sockets[0].open();
  sockets[0].drop(4001, 'forced offline');
  assert.equal(client.state, 'closed');
  assert.equal(kicked.length, 1);
  assert.equal(kicked[0].code, 4001);
  assert.equal(kicked[0].reason, 'forced offline');
  assert.equal(seen.close.at(-1)[0].retryIn, null);
  await tick(150);
  assert.equal(sockets.length, 1, 'no reconnection after a kick');
  client.connect();
  await until(() => sockets.length === 2);
  client.close();
});

test('a drain (1001) is not a kick unless kickCodes says so', async () => {
  const { client, sockets } = makeClient();
  client.connect();
  await until(() => sockets.length === 1);
  sockets[0].open();
  sockets[0].drop(1001, 'server shutting down');
  assert.equal(client.state, 'waiting');
  await until(() => sockets.length === 2);
  client.close();

  const dotnet = makeClient({ kickCodes: [1001] });
  dotnet.client.connect();
  await until(() => dotnet.sockets.length === 1);
  dotnet.sockets[0].open();
  dotnet.sockets[0].drop(1001, 'disconnect');
  assert.equal(dotnet.client.state, 'closed');
});

test('a preConnect that never answers times out and is retried', async () => {
  let calls = 0;
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  const client = new FreeImClient({
    preConnect: () => {
      calls += 1;
      if (calls === 1) return new Promise(() => {}); // the business service hangs
      return `ws://node.test/ws?token=t${calls}`;
    },
    WebSocket: FakeWebSocket,
    minDelay: 20,
    maxDelay: 80,
    jitter: 0,
    preConnectTimeout: 50,
  });
  const errors = [];
  client.on('error', (err) => errors.push(err.message));
  client.connect();
  await until(() => sockets.length === 1);
  assert.equal(calls, 2);
  assert.match(errors[0], /preConnect failed: no answer within 50 ms/);
  assert.equal(sockets[0].url, 'ws://node.test/ws?token=t2');
  client.close();
});

test('a preConnect that throws synchronously is an error, not a crash', async () => {
  const { client, seen } = makeClient({
    preConnect: () => {
      throw new Error('boom');
    },
  });
  client.connect();
  await until(() => seen.error.length >= 1);
  assert.match(seen.error[0][0].message, /preConnect failed: boom/);
  assert.equal(client.state, 'waiting');
  client.close();
});

const HEARTBEAT = 'freeim.heartbeat.v1';

test('offers freeim.heartbeat.v1 and gives up a socket whose heartbeat stops', async () => {
  const { client, sockets, seen } = makeClient();
  client.connect();
  await until(() => sockets.length === 1);
  assert.deepEqual(sockets[0].protocols, [HEARTBEAT]);
  assert.equal(sockets[0].binaryType, 'arraybuffer');
  sockets[0].open(HEARTBEAT);
  sockets[0].pushBinary('100'); // a 100 ms interval: silence allowed = 150 + 1000 ms
  // Any frame keeps the socket: binary ones are never messages.
  for (let i = 0; i < 12; i += 1) {
    await tick(100);
    if (i % 2) sockets[0].pushBinary('100');
    else sockets[0].push(`${i}`);
  }
  assert.equal(client.state, 'open');
  assert.equal(seen.close.length, 0);
  assert.deepEqual(seen.message.map(([data]) => data), [0, 2, 4, 6, 8, 10]);
  const lastFrame = Date.now();
  await until(() => seen.close.length === 1, 4000);
  const silent = Date.now() - lastFrame;
  assert.ok(silent >= 1100 && silent < 3000, `gave up after ${silent} ms of silence`);
  const [info] = seen.close[0];
  assert.deepEqual(info, { code: 4000, reason: 'heartbeat timeout', wasOpen: true, retryIn: 20 });
  assert.deepEqual(sockets[0].closed, { code: 4000, reason: 'heartbeat timeout' });
  assert.equal(sockets[0].onmessage, null, 'the old socket is detached');
  await until(() => sockets.length === 2);
  sockets[1].open(HEARTBEAT);
  assert.equal(client.state, 'open');
  assert.equal(seen.error.length, 0);
  client.close();
});

test('no watchdog when the node does not select the subprotocol, or it is not offered', async () => {
  const { client, sockets, seen } = makeClient();
  client.connect();
  await until(() => sockets.length === 1);
  sockets[0].open(''); // e.g. a node with --heartbeat-interval 0s, or FreeIM's .NET ImServer
  sockets[0].pushBinary('100');
  await tick(1500);
  assert.equal(client.state, 'open');
  assert.deepEqual([seen.close.length, seen.message.length, seen.error.length], [0, 0, 0]);
  client.close();

  const off = makeClient({ heartbeat: false });
  off.client.connect();
  await until(() => off.sockets.length === 1);
  assert.equal(off.sockets[0].protocols, undefined, 'no subprotocol offered');
  off.client.close();
});

test('after the ws package refuses a handshake without the subprotocol, it is no longer offered', async () => {
  const { client, sockets, seen } = makeClient();
  client.connect();
  await until(() => sockets.length === 1);
  sockets[0].onerror({ message: 'Server sent no subprotocol' });
  sockets[0].drop(1006);
  await until(() => sockets.length === 2);
  assert.equal(sockets[1].protocols, undefined);
  assert.match(seen.error[0][0].message, /connection failed/);
  client.close();
});

test('a WebSocket constructor that throws is reported and retried', async () => {
  let attempts = 0;
  const { FakeWebSocket, sockets } = fakeWebSocketClass();
  class FlakyWebSocket extends FakeWebSocket {
    constructor(url, protocols) {
      attempts += 1;
      if (attempts === 1) throw new SyntaxError('bad URL');
      super(url, protocols);
    }
  }
  const { client, seen } = makeClient({ WebSocket: FlakyWebSocket });
  client.connect();
  await until(() => sockets.length === 1);
  assert.match(seen.error[0][0].message, /cannot open the WebSocket: bad URL/);
  assert.equal(seen.close[0][0].wasOpen, false);
  client.close();
});

test('handlers that throw, even error handlers, crash neither the client nor the process', async () => {
  const { client, sockets, seen } = makeClient();
  for (const event of ['message', 'open', 'close', 'error', 'kicked']) {
    client.on(event, () => { throw new Error(`${event} handler`); });
  }
  const logged = [];
  const consoleError = console.error;
  console.error = (err) => logged.push(err.message);
  try {
    client.connect();
    await until(() => sockets.length === 1);
    sockets[0].open(HEARTBEAT);
    sockets[0].pushBinary('10');
    sockets[0].push('"hi"');
    sockets[0].push('not json');
    await until(() => sockets.length === 2, 3000); // heartbeat timeout, then a retry
    sockets[1].open();
    sockets[1].drop(4001, 'forced offline');
    assert.equal(client.state, 'closed');
  } finally {
    console.error = consoleError;
  }
  assert.deepEqual(seen.message.map(([data]) => data), ['hi']);
  assert.deepEqual(seen.close.map(([info]) => info.code), [4000, 4001]);
  const reported = seen.error.map(([err]) => err.message);
  for (const event of ['open', 'message', 'close', 'kicked']) {
    assert.ok(reported.includes(`a '${event}' handler threw: ${event} handler`), `${event}: ${reported}`);
  }
  assert.ok(logged.length >= 1 && logged.every((m) => m === 'error handler'), String(logged));
});
