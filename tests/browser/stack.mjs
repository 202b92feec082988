// The system under test, as real processes on loopback: redis-server, one
// freeim-server node and the freeim-demo service, each on a free port.
// Every child is killed by its PID when the stack stops, when this process
// exits, or when it receives SIGINT/SIGTERM. Also the headless Chromium the
// page tests launch, and a page of the stack's origin with the JS client.

import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { mkdtempSync, openSync, closeSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const children = new Set();

function killAll() {
  for (const child of children) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch (_) {
      /* already gone */
    }
  }
  children.clear();
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** Polls until `port` accepts connections, or throws after `ms`. */
export async function waitForPort(port, ms, what, logFile) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await canConnect(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  let log = '';
  try { log = readFileSync(logFile, 'utf8').slice(-2000); } catch (_) { /* none */ }
  throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${ms} ms\n${log}`);
}

/** One child process with a log file; restartable. */
class Service {
  constructor(name, command, args, port, logDir) {
    Object.assign(this, { name, command, args, port });
    this.logFile = join(logDir, `${name}.log`);
    this.child = null;
  }

  async start() {
    const fd = openSync(this.logFile, 'a');
    const child = spawn(this.command, this.args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    children.add(child);
    child.once('exit', () => children.delete(child));
    child.once('error', (err) => { this.error = err; });
    this.child = child;
    await waitForPort(this.port, 20000, this.name, this.logFile);
  }

  /** SIGKILL, and wait until the process is gone. */
  async kill() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    process.kill(child.pid, 'SIGKILL');
    await exited;
    this.child = null;
  }
}

/**
 * Starts redis-server, a node and the demo; `binDir` holds the
 * freeim-server and freeim-demo binaries; `nodeArgs` are added to the
 * node's command line.
 */
export async function startStack(binDir, { nodeArgs = [] } = {}) {
  const logDir = mkdtempSync(join(tmpdir(), 'freeim-browser-'));
  const [redisPort, nodePort, demoPort] = [await freePort(), await freePort(), await freePort()];
  const redisUrl = `redis://127.0.0.1:${redisPort}/`;
  const server = `127.0.0.1:${nodePort}`;
  const redis = new Service('redis', 'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], redisPort, logDir);
  const node = new Service('node', join(binDir, 'freeim-server'),
    ['--listen', server, '--redis', redisUrl, '--servers', server, '--threads', '2', ...nodeArgs], nodePort, logDir);
  const demo = new Service('demo', join(binDir, 'freeim-demo'),
    ['--listen', `127.0.0.1:${demoPort}`, '--redis', redisUrl, '--servers', server], demoPort, logDir);
  await redis.start();
  await node.start();
  await demo.start();
  return {
    redis, node, demo, logDir,
    url: `http://127.0.0.1:${demoPort}/`,
    stop: killAll,
  };
}

/** Headless Chromium (`$CHROMIUM`, default /usr/bin/chromium) with the flags the tests use. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run'],
  });
}

/**
 * A new page of `browser` on the stack's origin (so that the demo's API
 * answers the page's fetches) with the JS client loaded; page errors go to
 * stderr.
 */
export async function clientPage(browser, stack) {
  const page = await browser.newPage();
  page.on('pageerror', (err) => console.error('page error:', err.message));
  await page.goto(new URL('health', stack.url).href);
  await page.addScriptTag({ url: new URL('freeim-client.js', stack.url).href });
  return page;
}
