// FreeIM demo chat page. Every action is an HTTP call to the demo service
// (which drives the nodes through imhelper); everything that happens arrives
// over the WebSocket that FreeImClient keeps open. No framework: a little
// state, and render functions that rebuild small lists with textContent only.
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  // Per tab: two tabs = two users, and a reload is the same user in the
  // same conversation (its messages come back from GET /history).
  const store = window.sessionStorage;
  const MAX_ITEMS = 500; // messages kept per conversation
  const narrowQuery = window.matchMedia('(max-width: 720px)');

  function stored(key, fallback) {
    try {
      const value = JSON.parse(store.getItem(key));
      return value === null ? fallback : value;
    } catch (_) {
      return fallback;
    }
  }

  const params = new URLSearchParams(location.search);
  const savedCurrent = store.getItem('freeim.current') || 'lobby';
  const state = {
    me: {
      id: Number(store.getItem('freeim.id')) || null,
      name: params.get('name') || store.getItem('freeim.name') || null,
    },
    joined: new Set(stored('freeim.joined', [])),
    // key -> {key, kind, title, chan?, peer?, items: [], byMid: Map, unread, history}
    // key: 'lobby', '#chan' or '@peerId'; history: 'none', 'loading' or 'done'.
    conversations: new Map(),
    current: 'lobby',
    view: store.getItem('freeim.view') === 'chat' ? 'chat' : 'list', // on narrow screens: one pane at a time
    online: new Map(), // id -> name, of the clients online now
    names: new Map(), // id -> name, of every client seen (kept after they leave)
    channels: [], // [{chan, online}], busiest first
    sent: new Map(), // mid -> {status element} of my own messages, for receipts and echoes
    kicked: false,
    kickText: null, // who forced this page offline, from the notice before the close
    readyCount: 0, // connections whose channels have been re-joined
  };

  // ---- HTTP API ---------------------------------------------------------

  async function api(path, body) {
    const init = body === undefined
      ? { method: 'GET' }
      : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
    const res = await fetch(path, init);
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error || `${res.status} ${res.statusText}`);
    return data;
  }

  function newMid() {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    return 'c' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function saveSession() {
    if (state.me.id) store.setItem('freeim.id', String(state.me.id));
    if (state.me.name) store.setItem('freeim.name', state.me.name);
    store.setItem('freeim.joined', JSON.stringify([...state.joined]));
    const peers = [...state.conversations.values()].filter((c) => c.kind === 'dm').map((c) => [c.peer, nameOf(c.peer)]);
    store.setItem('freeim.peers', JSON.stringify(peers));
    store.setItem('freeim.current', state.current);
    store.setItem('freeim.view', state.view);
  }

  // ---- conversations ----------------------------------------------------

  function conversation(key) {
    let conv = state.conversations.get(key);
    if (!conv) {
      if (key === 'lobby') {
        conv = { key, kind: 'lobby', title: 'Lobby' };
      } else if (key.startsWith('#')) {
        conv = { key, kind: 'chan', chan: key.slice(1), title: key };
      } else {
        const peer = Number(key.slice(1));
        conv = { key, kind: 'dm', peer, title: nameOf(peer) };
      }
      conv.items = [];
      conv.byMid = new Map(); // mid -> element: a message shown once, however it arrives
      conv.unread = 0;
      conv.history = 'none';
      state.conversations.set(key, conv);
      if (conv.kind === 'dm') saveSession();
    }
    return conv;
  }

  function nameOf(id) {
    if (id === state.me.id) return state.me.name;
    return state.names.get(id) || `#${id}`;
  }

  function isNarrow() {
    return narrowQuery.matches;
  }

  /** Whether the user sees this conversation now (on a narrow screen the list may cover it). */
  function isViewing(key) {
    return key === state.current && !(isNarrow() && state.view === 'list');
  }

  /**
   * Adds a message element to a conversation; shows it if current. Only
   * messages from others (`counts`) raise the unread badge of a
   * conversation the user is not looking at; notices never do.
   */
  function post(key, element, counts = false) {
    const conv = conversation(key);
    if (element.dataset.mid) conv.byMid.set(element.dataset.mid, element);
    conv.items.push(element);
    if (conv.items.length > MAX_ITEMS) conv.items.shift().remove();
    if (key === state.current) {
      const list = $('messages');
      const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      list.appendChild(element);
      if (atBottom || element.classList.contains('mine')) list.scrollTop = list.scrollHeight;
    }
    if (counts && !isViewing(key)) conv.unread += 1;
    renderConversations();
  }

  /** A pushed (or stored) `chan` or `direct` message. */
  function chatElement(msg) {
    const mine = msg.from === state.me.id; // mine: sent from my other tab, or before a reload
    return messageElement({ mine, who: mine ? 'You' : msg.name, text: msg.text, at: msg.at, mid: msg.mid });
  }

  function messageElement({ mine, who, text, at, mid }) {
    const li = document.createElement('li');
    li.className = 'msg ' + (mine ? 'mine' : 'theirs');
    if (mid) li.dataset.mid = mid;
    li.dataset.at = String(at || Date.now());
    const whoEl = document.createElement('span');
    whoEl.className = 'who';
    whoEl.textContent = who;
    const textEl = document.createElement('span');
    textEl.className = 'text';
    textEl.textContent = text;
    const meta = document.createElement('span');
    meta.className = 'meta';
    const time = document.createElement('time');
    time.textContent = new Date(at || Date.now()).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    meta.appendChild(time);
    li.append(whoEl, textEl, meta);
    return li;
  }

  function systemElement(text, extraClass) {
    const li = document.createElement('li');
    li.className = 'msg system' + (extraClass ? ' ' + extraClass : '');
    li.dataset.at = String(Date.now());
    li.textContent = text;
    return li;
  }

  function setSendState(mid, cssState, label, title) {
    const entry = state.sent.get(mid);
    if (!entry) return;
    entry.status.className = 'state state-' + cssState;
    entry.status.textContent = label;
    if (title) entry.status.title = title;
  }

  // ---- history --------------------------------------------------------------

  /**
   * Fetches the stored messages of a channel or a direct conversation and
   * merges them in: a message already shown (pushed while the request was
   * in flight, or sent from this page) is kept once, by its `mid`. Nothing
   * here raises an unread badge. A 4xx answer (no such endpoint, an unknown
   * channel) shows nothing and is not asked again for this conversation.
   */
  async function loadHistory(conv) {
    if (conv.kind === 'lobby' || !state.me.id) return;
    const query = conv.kind === 'chan'
      ? new URLSearchParams({ chan: conv.chan })
      : new URLSearchParams({ id: String(state.me.id), with: String(conv.peer) });
    conv.history = 'loading';
    let messages;
    try {
      const res = await fetch('/history?' + query);
      if (!res.ok) {
        conv.history = res.status < 500 ? 'done' : 'none';
        if (res.status >= 500) console.warn(`history of ${conv.key}: ${res.status}`);
        return;
      }
      messages = (await res.json()).messages;
    } catch (err) {
      conv.history = 'none'; // asked again the next time it is opened
      console.warn(`history of ${conv.key}:`, err.message);
      return;
    }
    conv.history = 'done';
    if (Array.isArray(messages)) mergeHistory(conv, messages);
  }

  function mergeHistory(conv, messages) {
    const older = [];
    for (const msg of messages) {
      if (!msg || typeof msg.text !== 'string') continue;
      if (msg.mid && conv.byMid.has(msg.mid)) continue;
      if (msg.from !== state.me.id && msg.name) state.names.set(msg.from, msg.name);
      const element = chatElement(msg);
      if (msg.mid) conv.byMid.set(msg.mid, element);
      older.push(element);
    }
    if (!older.length) return;
    // Both lists are in time order: merge them by `at`.
    const merged = [];
    const items = conv.items;
    let i = 0;
    let j = 0;
    while (i < items.length || j < older.length) {
      if (j === older.length || (i < items.length && Number(items[i].dataset.at) <= Number(older[j].dataset.at))) {
        merged.push(items[i++]);
      } else {
        merged.push(older[j++]);
      }
    }
    conv.items = merged.slice(-MAX_ITEMS);
    if (conv.key === state.current) {
      const list = $('messages');
      const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      list.replaceChildren(...conv.items);
      if (atBottom) list.scrollTop = list.scrollHeight;
      renderTitle();
    }
    renderConversations();
    renderOnline();
    saveSession();
  }

  // ---- rendering ----------------------------------------------------------

  function renderConversations() {
    const list = $('conversations');
    list.replaceChildren();
    let unread = 0;
    for (const conv of state.conversations.values()) {
      if (conv.kind === 'chan' && !state.joined.has(conv.chan)) continue;
      unread += conv.unread;
      const li = document.createElement('li');
      const button = itemButton(conv.kind === 'dm' ? '@ ' + nameOf(conv.peer) : conv.title, conv.key === state.current);
      button.dataset.conv = conv.key;
      if (conv.unread) {
        const badge = document.createElement('span');
        badge.className = 'badge unread';
        badge.textContent = String(conv.unread);
        button.appendChild(badge);
      }
      button.addEventListener('click', () => openConversation(conv.key));
      li.appendChild(button);
      list.appendChild(li);
    }
    // The narrow layout's "back to the list" button says how many wait there.
    const badge = $('back-unread');
    badge.textContent = unread ? String(unread) : '';
    badge.hidden = !unread;
  }

  function renderChannels() {
    const list = $('channels');
    list.replaceChildren();
    if (!state.channels.length) {
      list.appendChild(emptyItem('No channels yet: create one below.'));
      return;
    }
    for (const { chan, online } of state.channels) {
      const li = document.createElement('li');
      const button = itemButton('#' + chan, state.current === '#' + chan);
      button.dataset.chan = chan;
      const right = document.createElement('span');
      if (state.joined.has(chan)) {
        const mark = document.createElement('span');
        mark.className = 'joined-mark';
        mark.textContent = '✓ ';
        mark.title = 'joined';
        right.appendChild(mark);
      }
      const count = document.createElement('span');
      count.className = 'badge';
      count.textContent = String(online);
      count.title = `${online} member${online === 1 ? '' : 's'}`;
      right.appendChild(count);
      button.appendChild(right);
      button.addEventListener('click', () => joinChannel(chan));
      li.appendChild(button);
      list.appendChild(li);
    }
  }

  function renderOnline() {
    const list = $('online');
    list.replaceChildren();
    if (state.me.id) state.online.set(state.me.id, state.me.name);
    $('online-count').textContent = String(state.online.size);
    if (state.me.id) {
      const li = document.createElement('li');
      const you = itemButton(`${state.me.name} (you)`, false);
      you.disabled = true;
      you.title = `You are #${state.me.id}`;
      li.appendChild(you);
      list.appendChild(li);
    }
    const others = [...state.online].filter(([id]) => id !== state.me.id);
    if (!others.length) {
      list.appendChild(emptyItem('Nobody else yet: open this page in another tab to chat with yourself.'));
      return;
    }
    others.sort((a, b) => a[1].localeCompare(b[1]));
    for (const [id, name] of others) {
      const li = document.createElement('li');
      const button = itemButton(name, state.current === '@' + id);
      button.dataset.user = String(id);
      button.title = `Send ${name} a direct message`;
      const idEl = document.createElement('span');
      idEl.className = 'muted id';
      idEl.textContent = '#' + id;
      button.appendChild(idEl);
      button.addEventListener('click', () => openConversation('@' + id));
      const kick = document.createElement('button');
      kick.type = 'button';
      kick.className = 'kick';
      kick.textContent = 'kick';
      kick.title = `Force ${name} offline`;
      kick.addEventListener('click', () => forceOffline(id));
      li.append(button, kick);
      list.appendChild(li);
    }
  }

  function itemButton(label, active) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'item' + (active ? ' active' : '');
    const text = document.createElement('span');
    text.className = 'label';
    text.textContent = label;
    button.appendChild(text);
    return button;
  }

  function emptyItem(text) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = text;
    return li;
  }

  function renderTitle() {
    const conv = conversation(state.current);
    $('conv-title').textContent = conv.kind === 'dm' ? `${nameOf(conv.peer)} (#${conv.peer})` : conv.title;
    if (conv.kind === 'dm') $('composer-text').placeholder = `Message ${nameOf(conv.peer)}`;
  }

  /** Shows the list or the conversation (one at a time on narrow screens). */
  function showView(view) {
    state.view = view;
    document.body.dataset.view = view;
    if (view === 'chat') conversation(state.current).unread = 0;
    saveSession();
    renderConversations();
  }

  /**
   * Makes `key` the current conversation, loads its history the first time,
   * and (unless `stay`, as at start-up) switches a narrow screen to it.
   */
  function openConversation(key, stay) {
    const conv = conversation(key);
    state.current = key;
    conv.unread = 0;
    renderTitle();
    $('conv-hint').textContent = {
      lobby: 'Who comes and goes, and announcements to everyone.',
      chan: 'Everyone who joined this channel sees these messages.',
      dm: 'Direct messages: each one tells you whether it was delivered.',
    }[conv.kind];
    $('composer-text').placeholder = {
      lobby: 'Announce something to everyone',
      chan: `Message ${conv.title}`,
      dm: `Message ${nameOf(conv.peer)}`,
    }[conv.kind];
    $('leave-button').hidden = conv.kind !== 'chan';
    $('composer-error').textContent = '';
    const list = $('messages');
    list.replaceChildren(...conv.items);
    list.scrollTop = list.scrollHeight;
    if (!stay) showView('chat');
    saveSession();
    renderConversations();
    renderChannels();
    renderOnline();
    if (!isNarrow()) $('composer-text').focus(); // no keyboard popping up on a phone
    if (conv.history === 'none') loadHistory(conv);
  }

  // ---- actions ------------------------------------------------------------

  // The channel list comes from GET /channels once per connection, then from
  // the `channels` messages the service pushes to everyone when it changes.
  // `channelsVersion` counts pushes: an answer to a GET that a push overtook
  // is older than what is shown, and dropped.
  let channelsVersion = 0;

  function setChannels(channels) {
    channelsVersion += 1;
    state.channels = channels;
    renderChannels();
  }

  async function refreshChannels() {
    const version = channelsVersion;
    try {
      const { channels } = await api('/channels');
      if (version === channelsVersion) setChannels(channels);
    } catch (err) {
      console.warn('channels:', err.message);
    }
  }

  /** Shows a count from a join/leave answer at once (a push follows). */
  function setChannelCount(chan, online) {
    const channels = state.channels.filter((c) => c.chan !== chan);
    if (online > 0) channels.push({ chan, online });
    // As the service sorts them: busiest first, then by name.
    channels.sort((a, b) => b.online - a.online || (a.chan < b.chan ? -1 : a.chan > b.chan ? 1 : 0));
    setChannels(channels);
  }

  async function refreshOnline() {
    try {
      const { clients } = await api('/online');
      state.online = new Map(clients.map((c) => [c.id, c.name]));
      for (const c of clients) state.names.set(c.id, c.name);
      renderOnline();
      renderConversations();
    } catch (err) {
      console.warn('online:', err.message);
    }
  }

  async function joinChannel(chan, quiet) {
    $('join-error').textContent = '';
    try {
      const joined = await api('/join', { id: state.me.id, chan });
      state.joined.add(joined.chan);
      saveSession();
      setChannelCount(joined.chan, joined.online);
      if (!quiet) openConversation('#' + joined.chan);
    } catch (err) {
      $('join-error').textContent = err.message;
    }
  }

  async function leaveChannel(chan) {
    let left;
    try {
      left = await api('/leave', { id: state.me.id, chan });
    } catch (err) {
      $('composer-error').textContent = err.message;
      return;
    }
    state.joined.delete(chan);
    conversation('#' + chan).history = 'none'; // what is said until a new join is missed
    setChannelCount(left.chan, left.online);
    openConversation('lobby');
  }

  async function forceOffline(id) {
    try {
      const { was_online: wasOnline } = await api('/force-offline', { id, by: state.me.id });
      post('lobby', systemElement(wasOnline ? `You disconnected ${nameOf(id)}.` : `${nameOf(id)} was not online.`));
    } catch (err) {
      post('lobby', systemElement(`Could not disconnect ${nameOf(id)}: ${err.message}`));
    }
  }

  async function send(text) {
    const conv = conversation(state.current);
    const mid = newMid();
    const element = messageElement({ mine: true, who: 'You', text, at: Date.now(), mid });
    const status = document.createElement('span');
    status.className = 'state state-sending';
    status.textContent = ' · sending…';
    element.querySelector('.meta').appendChild(status);
    state.sent.set(mid, { status });
    post(conv.key, element);
    try {
      if (conv.kind === 'chan') {
        await api('/chan-message', { id: state.me.id, chan: conv.chan, text, mid });
        setSendState(mid, 'sent', ' · sent');
      } else if (conv.kind === 'dm') {
        await api('/direct', { from: state.me.id, to: conv.peer, text, mid, receipt: true });
        // The receipt may already have arrived over the socket.
        if (status.classList.contains('state-sending')) setSendState(mid, 'sent', ' · sent, awaiting receipt…');
      } else {
        await api('/broadcast', { from: state.me.id, text });
        setSendState(mid, 'sent', ' · announced');
      }
    } catch (err) {
      setSendState(mid, 'failed', ' · not sent: ' + err.message);
    }
  }

  // ---- pushed messages ----------------------------------------------------

  function onMessage(msg) {
    if (msg && typeof msg === 'object' && 'receipt' in msg && 'content' in msg) return onReceipt(msg);
    switch (msg && msg.type) {
      case 'chan':
      case 'direct': {
        if (state.sent.has(msg.mid)) return; // my own, shown when sent
        const mine = msg.from === state.me.id; // sent from my other tab
        if (!mine) state.names.set(msg.from, msg.name);
        const key = msg.type === 'chan' ? '#' + msg.chan : '@' + (mine ? msg.to : msg.from);
        if (msg.mid && conversation(key).byMid.has(msg.mid)) return; // already shown (history)
        return post(key, chatElement(msg), !mine);
      }
      case 'channels':
        if (Array.isArray(msg.channels)) setChannels(msg.channels);
        return undefined;
      case 'presence':
        return onPresence(msg);
      case 'system':
        return onSystem(msg);
      default:
        post('lobby', systemElement('Unknown message: ' + JSON.stringify(msg)));
    }
  }

  function onReceipt(msg) {
    let original = {};
    try {
      original = JSON.parse(msg.content);
    } catch (_) { /* not ours */ }
    if (msg.receipt === '发送成功') {
      setSendState(original.mid, 'delivered', ' · delivered ✓', 'receipt: 发送成功 (delivered)');
    } else {
      setSendState(original.mid, 'offline', ' · not delivered: recipient offline', `receipt: ${msg.receipt}`);
    }
  }

  function onPresence(msg) {
    const you = msg.id === state.me.id;
    state.names.set(msg.id, msg.name);
    if (msg.event === 'online') {
      state.online.set(msg.id, msg.name);
      if (!you) post('lobby', systemElement(`${msg.name} came online`));
    } else {
      state.online.delete(msg.id);
      if (!you) post('lobby', systemElement(`${msg.name} went offline`));
    }
    renderOnline();
    renderConversations();
    renderTitle();
  }

  function onSystem(msg) {
    switch (msg.event) {
      case 'announcement': {
        const from = msg.from === state.me.id ? null : msg.name;
        if (msg.from === state.me.id) return; // shown when sent
        return post('lobby', systemElement(from ? `${from} announces: ${msg.text}` : `Announcement: ${msg.text}`, 'announcement'), true);
      }
      case 'joined':
      case 'left':
        if (msg.from === state.me.id && msg.event === 'joined') {
          post('#' + msg.chan, systemElement(`You joined #${msg.chan}`));
        } else {
          post('#' + msg.chan, systemElement(msg.text));
        }
        return undefined;
      case 'kicked':
        // The node's close (4001) follows; this says who did it.
        state.kickText = msg.text;
        return undefined;
      default:
        post('lobby', systemElement(msg.text || JSON.stringify(msg)));
    }
  }

  // ---- connection -----------------------------------------------------------

  function setStatus(kind, text) {
    const el = $('status');
    el.className = 'status status-' + kind;
    el.textContent = text;
  }

  function showBanner(text, action) {
    $('banner-text').textContent = text;
    $('banner-action').textContent = action;
    $('banner').hidden = false;
  }

  const client = new FreeImClient({
    preConnect: async () => {
      const body = {};
      if (state.me.id) body.id = state.me.id;
      if (state.me.name) body.name = state.me.name;
      const answer = await api('/prev-connect', body);
      state.me.id = answer.id;
      state.me.name = answer.name;
      saveSession();
      $('me-name').textContent = answer.name;
      $('me-id').textContent = '#' + answer.id;
      return answer.url;
    },
  });

  let welcomed = false;
  client.on('open', async () => {
    setStatus('open', 'connected');
    $('banner').hidden = true;
    if (!welcomed) {
      welcomed = true;
      post('lobby', systemElement(
        `Welcome, ${state.me.name}! Join or create a channel, or click someone online to message them.`));
      post('lobby', systemElement(
        'How it works: every action on this page is an HTTP call to the demo service, which drives the FreeIM ' +
        'node through imhelper; everything that arrives here came over this tab\'s WebSocket to the node.'));
    } else {
      post('lobby', systemElement('Reconnected.'));
      // What was said while the socket was down: the open conversation asks
      // now, the others when they are opened.
      for (const conv of state.conversations.values()) {
        if (conv.history === 'done') conv.history = 'none';
      }
      const current = conversation(state.current);
      if (current.history === 'none') loadHistory(current);
    }
    // The node forgets a client's channels when its last socket closes:
    // join them again after every (re)connection.
    for (const chan of [...state.joined]) await joinChannel(chan, true);
    state.readyCount += 1;
    refreshOnline();
    refreshChannels();
    renderConversations();
  });

  client.on('close', (info) => {
    if (info.retryIn === null) {
      setStatus('closed', 'disconnected');
      return;
    }
    const seconds = Math.max(1, Math.round(info.retryIn / 1000));
    setStatus('waiting', `reconnecting in ${seconds}s…`);
    if (info.wasOpen) post('lobby', systemElement(`Connection lost (code ${info.code}); reconnecting…`));
  });

  client.on('kicked', () => {
    state.kicked = true;
    setStatus('closed', 'disconnected');
    showBanner(`${state.kickText || 'Signed in elsewhere: this page was disconnected'}.`, 'Reconnect');
    state.kickText = null;
  });

  client.on('error', (err) => console.warn('FreeIM:', err.message));
  client.on('message', onMessage);

  // ---- wiring ---------------------------------------------------------------

  $('join-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const name = $('join-name').value.trim();
    if (!name) return;
    $('join-name').value = '';
    joinChannel(name.replace(/^#/, ''));
  });

  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('composer-text');
    const text = input.value;
    if (!text.trim()) return;
    input.value = '';
    $('composer-error').textContent = '';
    send(text);
  });

  $('leave-button').addEventListener('click', () => {
    const conv = conversation(state.current);
    if (conv.kind === 'chan') leaveChannel(conv.chan);
  });

  $('banner-action').addEventListener('click', () => {
    state.kicked = false;
    $('banner').hidden = true;
    setStatus('connecting', 'connecting…');
    client.connect();
  });

  $('back-button').addEventListener('click', () => showView('list'));

  window.addEventListener('online', () => { if (!state.kicked) client.connect(); });
  narrowQuery.addEventListener('change', () => showView(isNarrow() ? state.view : 'chat'));

  // After a reload: the same user, its channels and direct conversations,
  // and the conversation it had open (with its history).
  if (state.me.name) $('me-name').textContent = state.me.name;
  if (state.me.id) $('me-id').textContent = '#' + state.me.id;
  conversation('lobby');
  for (const chan of state.joined) conversation('#' + chan);
  for (const [id, name] of stored('freeim.peers', [])) {
    if (!Number.isSafeInteger(id) || id <= 0) continue;
    if (typeof name === 'string' && !name.startsWith('#')) state.names.set(id, name);
    conversation('@' + id);
  }
  const restorable = state.conversations.has(savedCurrent)
    && (!savedCurrent.startsWith('#') || state.joined.has(savedCurrent.slice(1)));
  openConversation(restorable ? savedCurrent : 'lobby', true);
  showView(state.view);
  client.connect();

  // For tests and the curious: window.freeimDemo.state / .client
  window.freeimDemo = { state, client };
})();
