// End-to-end test of the demo chat page in headless Debian Chromium:
// two pages get ids, join a channel and chat, exchange a direct message with
// a receipt, survive a node restart (reconnect + re-join), and one sees the
// other leave. Saves a screenshot of the chat page for the README.
//
// Run through scripts/browser-test.sh (it installs Chromium and the npm
// packages, builds the binaries and sets FREEIM_BIN_DIR).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { startStack } from './stack.mjs';

const BIN_DIR = process.env.FREEIM_BIN_DIR;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = join(process.env.SCREENSHOT_DIR || resolve(import.meta.dirname ?? '.', '../../docs'), 'chat.png');
const STEP = 15000; // longest wait for any one thing to show up

let stack;
let context;

after(async () => {
  if (context) await context.close().catch(() => {});
  if (stack) stack.stop();
});

async function openChat(name) {
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[${name}] page error:`, err.message));
  await page.goto(`${stack.url}?name=${encodeURIComponent(name)}`);
  await page.getByTestId('status').filter({ hasText: 'connected' }).waitFor({ timeout: STEP });
  const idText = await page.getByTestId('me-id').textContent();
  const id = Number(idText.replace('#', ''));
  assert.ok(id > 0, `${name} got an id (${idText})`);
  return { page, id, name };
}

const messages = (page) => page.getByTestId('messages');

async function expectMessage(page, text) {
  await messages(page).getByText(text, { exact: false }).first().waitFor({ timeout: STEP });
}

async function joinChannel({ page }, chan) {
  await page.getByTestId('join-input').fill(chan);
  await page.getByTestId('join-button').click();
  await page.getByTestId('conv-title').filter({ hasText: `#${chan}` }).waitFor({ timeout: STEP });
  await expectMessage(page, `You joined #${chan}`);
}

async function say({ page }, text) {
  await page.getByTestId('composer-input').fill(text);
  await page.getByTestId('composer-input').press('Enter');
}

async function openConversation({ page }, key) {
  await page.locator(`[data-conv="${key}"]`).click();
}

test('two pages chat through the node', { timeout: 150000 }, async () => {
  assert.ok(BIN_DIR, 'FREEIM_BIN_DIR must name the directory holding freeim-server and freeim-demo');
  stack = await startStack(BIN_DIR);
  const userDataDir = mkdtempSync(join(tmpdir(), 'freeim-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 600 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run',
    ],
  });

  // 1. Each page gets an id and connects; each sees the other arrive.
  const alice = await openChat('Alice');
  const bob = await openChat('Bob');
  assert.notEqual(alice.id, bob.id);
  await expectMessage(alice.page, 'Bob came online');
  await alice.page.locator(`[data-user="${bob.id}"]`).waitFor({ timeout: STEP });

  // 2. Both join #general; its member count reaches 2.
  await joinChannel(alice, 'general');
  await joinChannel(bob, 'general');
  await expectMessage(alice.page, 'Bob joined #general');
  await alice.page.locator('[data-chan="general"] .badge').filter({ hasText: /^2$/ }).waitFor({ timeout: STEP });

  // 3. A message typed in one page appears in the other, and back.
  await say(alice, 'Hello from Alice!');
  await expectMessage(bob.page, 'Hello from Alice!');
  await say(bob, 'Hi Alice, Bob here');
  await expectMessage(alice.page, 'Hi Alice, Bob here');
  await messages(alice.page).locator('.msg.mine .state-sent').first().waitFor({ timeout: STEP });

  // 4. A direct message arrives, and the sender sees its receipt.
  await alice.page.locator(`[data-user="${bob.id}"]`).click();
  await alice.page.getByTestId('conv-title').filter({ hasText: 'Bob' }).waitFor({ timeout: STEP });
  await say(alice, 'psst, a direct message');
  await messages(alice.page).locator('.state-delivered').filter({ hasText: 'delivered ✓' })
    .waitFor({ timeout: STEP });
  await bob.page.locator(`[data-conv="@${alice.id}"] .badge.unread`).waitFor({ timeout: STEP });
  await openConversation(bob, `@${alice.id}`);
  await expectMessage(bob.page, 'psst, a direct message');
  await say(bob, 'got it');
  await expectMessage(alice.page, 'got it');

  // Screenshot for the README: Alice's view of #general.
  await openConversation(alice, '#general');
  await openConversation(bob, '#general');
  await say(alice, 'See you in the lobby!');
  await expectMessage(bob.page, 'See you in the lobby!');
  await alice.page.waitForFunction(() => !document.querySelector('#messages .state-sending'), null, { timeout: STEP });
  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await alice.page.screenshot({ path: SCREENSHOT });

  // 5. The node dies and comes back: both pages reconnect by themselves and
  //    re-join #general (the node forgot their memberships).
  await stack.node.kill();
  await alice.page.getByTestId('status').filter({ hasText: 'reconnecting' }).waitFor({ timeout: STEP });
  await stack.node.start();
  for (const user of [alice, bob]) {
    await user.page.getByTestId('status').filter({ hasText: 'connected' }).waitFor({ timeout: 30000 });
  }
  for (const user of [alice, bob]) {
    // The page counts connections whose channels are re-joined.
    await user.page.waitForFunction(() => window.freeimDemo.state.readyCount >= 2, null, { timeout: STEP });
  }
  await openConversation(alice, '#general');
  await openConversation(bob, '#general');
  await say(alice, 'still here after the restart');
  await expectMessage(bob.page, 'still here after the restart');
  await say(bob, 'me too');
  await expectMessage(alice.page, 'me too');

  // 6. Bob closes his page: Alice sees him go, and a DM to him reports it.
  await bob.page.close();
  await openConversation(alice, 'lobby');
  await expectMessage(alice.page, 'Bob went offline');
  await alice.page.locator(`[data-user="${bob.id}"]`).waitFor({ state: 'detached', timeout: STEP });
  await openConversation(alice, `@${bob.id}`);
  await say(alice, 'are you there?');
  await messages(alice.page).locator('.state-offline').filter({ hasText: 'recipient offline' })
    .waitFor({ timeout: STEP });

  // 7. Alice kicks Carol: Carol's page says so and stays disconnected until
  //    she asks to reconnect.
  const carol = await openChat('Carol');
  await openConversation(alice, 'lobby');
  await alice.page.locator(`[data-user="${carol.id}"] + .kick`).click();
  await carol.page.locator('#banner').filter({ hasText: 'Alice disconnected you' }).waitFor({ timeout: STEP });
  await carol.page.getByTestId('status').filter({ hasText: 'disconnected' }).waitFor({ timeout: STEP });
  await expectMessage(alice.page, 'Carol went offline');
  await carol.page.waitForTimeout(1500);
  assert.equal(await carol.page.getByTestId('status').textContent(), 'disconnected', 'no automatic reconnect');
  await carol.page.locator('#banner-action').click();
  await carol.page.getByTestId('status').filter({ hasText: 'connected' }).waitFor({ timeout: STEP });
  await expectMessage(alice.page, 'Carol came online');
});
