// End-to-end test of the demo chat page in headless Debian Chromium:
// two pages get ids, join a channel and chat, exchange a direct message with
// a receipt, survive a node restart (reconnect + re-join), and one sees the
// other leave; a channel one page creates shows in the others at once (the
// service pushes the channel list); a reload keeps the user and its
// conversation (history, no duplicates, no unread badge); on a phone-sized
// screen (390×844) nothing is cut off. Saves screenshots of the chat page for
// the README (chat.png, chat-narrow.png, chat-narrow-list.png).
//
// Run through scripts/browser-test.sh (it installs Chromium and the npm
// packages, builds the binaries and sets FREEIM_BIN_DIR).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { startStack } from './stack.mjs';

const BIN_DIR = process.env.FREEIM_BIN_DIR;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || resolve(import.meta.dirname ?? '.', '../../docs');
const SCREENSHOT = join(SCREENSHOT_DIR, 'chat.png');
const STEP = 15000; // longest wait for any one thing to show up
const PUSHED = 2000; // longest wait for something the service pushes to everyone
const PHONE = { width: 390, height: 844 }; // iPhone 12-15

let stack;
let context;

before(async () => {
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
});

after(async () => {
  if (context) await context.close().catch(() => {});
  if (stack) stack.stop();
});

/**
 * A new tab (a new user: ids live in sessionStorage) named `name` (the
 * service picks one when null), connected. `errors` collects its page errors;
 * `finished` the paths of its finished HTTP requests.
 */
async function openChat(name, viewport) {
  const page = await context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  const errors = [];
  const finished = [];
  page.on('pageerror', (err) => {
    console.error(`[${name}] page error:`, err.message);
    errors.push(err.message);
  });
  page.on('requestfinished', (req) => finished.push(new URL(req.url()).pathname));
  await page.goto(name === null ? stack.url : `${stack.url}?name=${encodeURIComponent(name)}`);
  await waitConnected(page);
  const idText = await page.getByTestId('me-id').textContent();
  const id = Number(idText.replace('#', ''));
  assert.ok(id > 0, `${name} got an id (${idText})`);
  return { page, id, name: name ?? (await page.getByTestId('me-name').textContent()), errors, finished };
}

/** Connected, and its channels joined again. */
async function waitConnected(page, connections = 1) {
  await page.getByTestId('status').filter({ hasText: 'connected' }).waitFor({ timeout: STEP });
  await page.waitForFunction((n) => window.freeimDemo.state.readyCount >= n, connections, { timeout: STEP });
}

async function waitUntil(what, predicate, ms = STEP) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
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

/** How many messages of the open conversation hold `text`. */
async function countMessages(page, text) {
  return messages(page).locator('.msg').filter({ hasText: text }).count();
}

async function expectOnce(page, text) {
  await expectMessage(page, text);
  assert.equal(await countMessages(page, text), 1, `"${text}" shown once`);
}

/** The texts of the open conversation's messages, in order. */
async function messageTexts(page) {
  return messages(page).locator('.msg').allTextContents();
}

async function expectNoUnread(page, why) {
  const badges = await page.locator('#conversations .badge.unread').allTextContents();
  assert.deepEqual(badges, [], `no unread badge ${why}`);
  assert.equal(await page.locator('#back-unread:not([hidden])').count(), 0, `no unread count on the back button ${why}`);
}

/**
 * Holds the page's GET /history requests whose query matches `match`: with
 * `early`, the answer is fetched at once (so it misses what comes later) and
 * delivered when released; otherwise the request reaches the service only
 * when released. Resolves `requested` when one is held.
 */
async function holdHistory(page, match, early) {
  let release;
  const released = new Promise((r) => { release = r; });
  let seen;
  const requested = new Promise((r) => { seen = r; });
  let handled = Promise.resolve();
  const handler = (route) => {
    const url = new URL(route.request().url());
    if (!match(url.searchParams)) return route.fallback();
    handled = (async () => {
      if (early) {
        const response = await route.fetch();
        seen();
        await released;
        await route.fulfill({ response });
      } else {
        seen();
        await released;
        await route.continue();
      }
    })();
    return handled;
  };
  await page.route('**/history?*', handler);
  return {
    requested,
    release: async () => {
      release();
      await handled; // delivered before the handler goes
      await page.unroute('**/history?*', handler);
    },
  };
}

test('a channel one page creates shows in the others within 2 s (pushed, not polled)', { timeout: 60000 }, async () => {
  const erin = await openChat('Erin');
  const frank = await openChat('Frank');
  // Frank's one GET /channels of this connection is over: whatever changes
  // from now on must come pushed.
  await waitUntil('the first GET /channels', () => frank.finished.includes('/channels'));
  const gets = () => frank.finished.filter((path) => path === '/channels').length;
  const before = gets();
  const chan = `fresh-${process.pid}`;

  await joinChannel(erin, chan);
  await frank.page.locator(`[data-chan="${chan}"] .badge`).filter({ hasText: /^1$/ }).waitFor({ timeout: PUSHED });

  // Member counts follow too: Frank joins from the list, Erin sees 2; Erin
  // leaves, Frank sees 1.
  await frank.page.locator(`[data-chan="${chan}"]`).click();
  await expectMessage(frank.page, `You joined #${chan}`);
  await erin.page.locator(`[data-chan="${chan}"] .badge`).filter({ hasText: /^2$/ }).waitFor({ timeout: PUSHED });
  await erin.page.getByTestId('leave-button').click();
  await frank.page.locator(`[data-chan="${chan}"] .badge`).filter({ hasText: /^1$/ }).waitFor({ timeout: PUSHED });
  assert.equal(gets(), before, 'no GET /channels after the first one');

  assert.deepEqual([...erin.errors, ...frank.errors], []);
  await erin.page.close();
  await frank.page.close();
});

test('a reload keeps the user and its conversations: history, no duplicates, no unread badge', { timeout: 90000 }, async () => {
  const gina = await openChat('Gina');
  const hank = await openChat('Hank');
  const chan = `reload-${process.pid}`;
  await joinChannel(gina, chan);
  await joinChannel(hank, chan);
  await say(gina, 'said before the reload');
  await expectMessage(hank.page, 'said before the reload');
  await say(hank, 'answered before the reload');
  await expectMessage(gina.page, 'answered before the reload');
  await gina.page.locator(`[data-user="${hank.id}"]`).click();
  await say(gina, 'a direct message before the reload');
  await messages(gina.page).locator('.state-delivered').waitFor({ timeout: STEP });
  await hank.page.locator(`[data-conv="@${gina.id}"] .badge.unread`).waitFor({ timeout: STEP });
  await openConversation(hank, `@${gina.id}`);
  await expectMessage(hank.page, 'a direct message before the reload');
  await openConversation(hank, `#${chan}`);
  await openConversation(gina, `#${chan}`);

  // 1. Hank reloads. His channel's history is held until he is back in the
  //    channel and a new message has been pushed to him: the history
  //    (which has it too) must not show it twice.
  const held = await holdHistory(hank.page, (q) => q.get('chan') === chan, false);
  await hank.page.reload();
  await held.requested;
  await waitConnected(hank.page);
  assert.equal(await hank.page.getByTestId('me-id').textContent(), `#${hank.id}`, 'the same id after the reload');
  await hank.page.getByTestId('conv-title').filter({ hasText: `#${chan}` }).waitFor({ timeout: STEP });
  await say(gina, 'pushed while the history loads');
  await expectMessage(hank.page, 'pushed while the history loads');
  await held.release();
  await expectOnce(hank.page, 'said before the reload');
  await expectOnce(hank.page, 'answered before the reload');
  await expectOnce(hank.page, 'pushed while the history loads');
  assert.equal(await messages(hank.page).locator('.msg.mine').filter({ hasText: 'answered before the reload' }).count(), 1,
    'his own message is his');
  let texts = await messageTexts(hank.page);
  const at = (text) => texts.findIndex((t) => t.includes(text));
  assert.ok(at('said before the reload') < at('answered before the reload'), texts.join(' | '));
  assert.ok(at('answered before the reload') < at('pushed while the history loads'), texts.join(' | '));
  await say(gina, 'said after the reload');
  await expectOnce(hank.page, 'said after the reload');
  await hank.page.waitForTimeout(300);
  await expectNoUnread(hank.page, 'after a reload');

  // 2. The direct conversation is still listed; opening it loads its
  //    history. This one is answered at once but delivered after a new
  //    direct message was pushed: that message must not be lost.
  const heldDm = await holdHistory(hank.page, (q) => q.get('with') === String(gina.id), true);
  await openConversation(hank, `@${gina.id}`);
  await heldDm.requested;
  await gina.page.locator(`[data-user="${hank.id}"]`).click();
  await say(gina, 'a direct message while the history loads');
  await expectMessage(hank.page, 'a direct message while the history loads');
  await heldDm.release();
  await expectOnce(hank.page, 'a direct message before the reload');
  await expectOnce(hank.page, 'a direct message while the history loads');
  texts = await messageTexts(hank.page);
  assert.ok(at('a direct message before the reload') < at('a direct message while the history loads'), texts.join(' | '));
  await hank.page.getByTestId('conv-title').filter({ hasText: 'Gina' }).waitFor({ timeout: STEP });
  await expectNoUnread(hank.page, 'for history or the open conversation');

  // 3. A second reload, nothing held: the direct conversation is open again,
  //    each message once.
  await hank.page.reload();
  await waitConnected(hank.page);
  await hank.page.getByTestId('conv-title').filter({ hasText: 'Gina' }).waitFor({ timeout: STEP });
  await expectOnce(hank.page, 'a direct message before the reload');
  await expectOnce(hank.page, 'a direct message while the history loads');
  await openConversation(hank, `#${chan}`);
  await expectOnce(hank.page, 'said after the reload');
  await expectNoUnread(hank.page, 'after a second reload');

  assert.deepEqual([...gina.errors, ...hank.errors], []);
  await gina.page.close();
  await hank.page.close();
});

/** Geometry problems of a page on screen, as readable strings (none: []). */
function layoutProblems() {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth) problems.push(`the page scrolls sideways (${doc.scrollWidth} > ${doc.clientWidth})`);
  const visible = (el) => el.getClientRects().length > 0;
  const name = (el) => `${el.id ? '#' + el.id : el.className} "${el.textContent.trim().slice(0, 40)}"`;
  // Text boxes hold their text.
  for (const el of document.querySelectorAll('.label, #conv-title, #me-name, #me-id, .chat-head button, .composer button')) {
    if (visible(el) && el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== 'inline') {
      problems.push(`${name(el)} overflows (${el.scrollWidth} > ${el.clientWidth})`);
    }
    const box = el.getBoundingClientRect();
    if (visible(el) && (box.left < -0.5 || box.right > window.innerWidth + 0.5)) {
      problems.push(`${name(el)} is off screen (${box.left}..${box.right})`);
    }
  }
  // Every Online row, and everything in it, is fully inside the sidebar's
  // visible width.
  const sidebar = document.querySelector('.sidebar');
  if (visible(sidebar)) {
    const side = sidebar.getBoundingClientRect();
    const right = side.left + sidebar.clientLeft + sidebar.clientWidth;
    for (const el of document.querySelectorAll('#online li, #online li *')) {
      const box = el.getBoundingClientRect();
      if (box.left < side.left - 0.5 || box.right > right + 0.5) {
        problems.push(`online row ${name(el)} is cut (${box.left}..${box.right} outside ${side.left}..${right})`);
      }
    }
  }
  return problems;
}

test('on a 390×844 screen nothing is cut off: the list and the conversation take turns', { timeout: 90000 }, async () => {
  const longName = 'Maximilian Featherstone';
  const ivy = await openChat('Ivy', PHONE);
  const max = await openChat(longName);
  const unbroken = await openChat('Supercalifragilisticexpi');
  const someone = await openChat(null); // a name the service picked
  const chan = `phone-${process.pid}`;
  const problems = () => ivy.page.evaluate(layoutProblems);
  const isShown = (selector) => ivy.page.locator(selector).isVisible();

  // The list first, every row whole.
  for (const user of [max, unbroken, someone]) {
    await ivy.page.locator(`[data-user="${user.id}"]`).waitFor({ timeout: STEP });
  }
  assert.ok(await isShown('.sidebar') && !(await isShown('.chat')), 'a new page shows the list');
  assert.deepEqual(await problems(), [], 'the list at 390 px');
  const rows = await ivy.page.locator('#online li').evaluateAll((lis) => lis.map((li) => li.getBoundingClientRect().bottom));
  assert.ok(Math.max(...rows) <= PHONE.height, `every Online row is on screen (${rows})`);

  // A channel: joining opens it; the back button returns to the list.
  await ivy.page.getByTestId('join-input').fill(chan);
  await ivy.page.getByTestId('join-button').click();
  await ivy.page.getByTestId('conv-title').filter({ hasText: `#${chan}` }).waitFor({ timeout: STEP });
  assert.ok(await isShown('.chat') && !(await isShown('.sidebar')), 'the conversation replaces the list');
  assert.deepEqual(await problems(), [], 'a channel at 390 px');
  await ivy.page.getByTestId('back-button').click();
  assert.ok(await isShown('.sidebar') && !(await isShown('.chat')), 'back to the list');

  // A direct conversation with the long name: the title holds all of it.
  await ivy.page.locator(`[data-user="${max.id}"]`).click();
  const title = ivy.page.getByTestId('conv-title');
  await title.filter({ hasText: longName }).waitFor({ timeout: STEP });
  assert.equal(await title.textContent(), `${longName} (#${max.id})`);
  await say(ivy, 'Hello Maximilian, this is a message long enough to wrap on a phone screen.');
  await messages(ivy.page).locator('.state-delivered').waitFor({ timeout: STEP });
  await openConversation(max, `@${ivy.id}`);
  await say(max, 'Hi Ivy! Writing from a wide screen.');
  await expectMessage(ivy.page, 'Hi Ivy!');
  const composer = await ivy.page.locator('#composer').boundingBox();
  assert.ok(composer.y + composer.height <= PHONE.height, 'the composer is on screen');
  assert.deepEqual(await problems(), [], 'a direct conversation at 390 px');
  await ivy.page.waitForFunction(() => !document.querySelector('#messages .state-sending'), null, { timeout: STEP });
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await ivy.page.screenshot({ path: join(SCREENSHOT_DIR, 'chat-narrow.png') });

  // Back in the list the selected row is whole, and a message to another
  // conversation shows on the back button while one reads.
  await ivy.page.getByTestId('back-button').click();
  await ivy.page.locator(`[data-user="${max.id}"].active`).waitFor({ timeout: STEP });
  assert.deepEqual(await problems(), [], 'the list with a selected long name at 390 px');
  await ivy.page.screenshot({ path: join(SCREENSHOT_DIR, 'chat-narrow-list.png') });
  await ivy.page.locator(`[data-conv="#${chan}"]`).click();
  await openConversation(unbroken, 'lobby');
  await unbroken.page.locator(`[data-user="${ivy.id}"]`).click();
  await say(unbroken, 'knock knock');
  await ivy.page.locator('#back-unread').filter({ hasText: /^1$/ }).waitFor({ timeout: STEP });

  // The same page on a desktop: both panes, nothing cut.
  await ivy.page.setViewportSize({ width: 1100, height: 600 });
  assert.ok(await isShown('.sidebar') && await isShown('.chat'), 'both panes on a wide screen');
  assert.deepEqual(await problems(), [], 'at 1100 px');

  assert.deepEqual([...ivy.errors, ...max.errors, ...unbroken.errors, ...someone.errors], []);
  for (const user of [ivy, max, unbroken, someone]) await user.page.close();
});
