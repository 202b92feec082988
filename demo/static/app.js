// FreeIM demo chat page. Every action is an HTTP call to the demo service
// (which drives the nodes through imhelper); everything that happens arrives
// over the WebSocket that FreeImClient keeps open. No framework: a little
// state, and render functions that rebuild small lists with textContent only.
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const store = window.sessionStorage; // per tab: two tabs = two users

  const params = new URLSearchParams(location.search);
  const state = {
    me: {
      id: Number(store.getItem('freeim.id')) || null,
      name: params.get('name') || store.getItem('freeim.name') || null,
    },
    joined: new Set(JSON.parse(store.getItem('freeim.joined') || '[]')),
    conversations: new Map(), // key -> {key, kind, title, chan?, peer?, items: [], unread}
    current: 'lobby',
    online: new Map(), // id -> name, of the clients online now
    names: new Map(), // id -> name, of every client seen (kept after they leave)
    channels: [], // [{chan, online}]
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
    store.setItem('freeim.id', String(state.me.id));
    store.setItem('freeim.name', state.me.name);
    store.setItem('freeim.joined', JSON.stringify([...state.joined]));
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
      conv.unread = 0;
      state.conversations.set(key, conv);
    }
    return conv;
  }

  function nameOf(id) {
    if (id === state.me.id) return state.me.name;
    return state.names.get(id) || `#${id}`;
  }

  /** Adds a message element to a conversation; shows it if current. */
  function post(key, element) {
    const conv = conversation(key);
    conv.items.push(element);
    if (conv.items.length > 500) conv.items.shift();
    if (key === state.current) {
      const list = $('messages');
      const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      list.appendChild(element);
      if (atBottom || element.classList.contains('mine')) list.scrollTop = list.scrollHeight;
    } else {
      conv.unread += 1;
    }
    renderConversations();
  }

  function messageElement({ mine, who, text, at, mid }) {
    const li = document.createElement('li');
    li.className = 'msg ' + (mine ? 'mine' : 'theirs');
    if (mid) li.dataset.mid = mid;
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

  // ---- rendering ----------------------------------------------------------

  function renderConversations() {
    const list = $('conversations');
    list.replaceChildren();
    for (const conv of state.conversations.values()) {
      if (conv.kind === 'chan' && !state.joined.has(conv.chan)) continue;
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
      idEl.className = 'muted';
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

  function openConversation(key) {
    const conv = conversation(key);
    state.current = key;
    conv.unread = 0;
    $('conv-title').textContent = conv.kind === 'dm' ? `${nameOf(conv.peer)} (#${conv.peer})` : conv.title;
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
    renderConversations();
    renderChannels();
    renderOnline();
    $('composer-text').focus();
  }

  // ---- actions ------------------------------------------------------------

  async function refreshChannels() {
    try {
      state.channels = (await api('/channels')).channels;
      renderChannels();
    } catch (err) {
      console.warn('channels:', err.message);
    }
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
      if (!quiet) openConversation('#' + joined.chan);
      refreshChannels();
    } catch (err) {
      $('join-error').textContent = err.message;
    }
  }

  async function leaveChannel(chan) {
    try {
      await api('/leave', { id: state.me.id, chan });
    } catch (err) {
      $('composer-error').textContent = err.message;
      return;
    }
    state.joined.delete(chan);
    saveSession();
    openConversation('lobby');
    refreshChannels();
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
        if (state.sent.has(msg.mid)) return; // my own, echoed to my other tab
        return post('#' + msg.chan, messageElement({ mine: false, who: msg.name, text: msg.text, at: msg.at }));
      case 'direct': {
        if (state.sent.has(msg.mid)) return;
        const mine = msg.from === state.me.id; // sent from my other tab
        const peer = mine ? msg.to : msg.from;
        if (!mine) state.names.set(msg.from, msg.name);
        return post('@' + peer, messageElement({ mine, who: mine ? 'You' : msg.name, text: msg.text, at: msg.at }));
      }
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
    if (state.current.startsWith('@')) $('conv-title').textContent = `${nameOf(Number(state.current.slice(1)))} (#${state.current.slice(1)})`;
    refreshChannelsSoon();
  }

  function onSystem(msg) {
    switch (msg.event) {
      case 'announcement': {
        const from = msg.from === state.me.id ? null : msg.name;
        if (msg.from === state.me.id) return; // shown when sent
        return post('lobby', systemElement(from ? `${from} announces: ${msg.text}` : `Announcement: ${msg.text}`, 'announcement'));
      }
      case 'joined':
      case 'left':
        if (msg.from === state.me.id && msg.event === 'joined') {
          post('#' + msg.chan, systemElement(`You joined #${msg.chan}`));
        } else {
          post('#' + msg.chan, systemElement(msg.text));
        }
        return refreshChannelsSoon();
      case 'kicked':
        // The node's close (4001) follows; this says who did it.
        state.kickText = msg.text;
        return undefined;
      default:
        post('lobby', systemElement(msg.text || JSON.stringify(msg)));
    }
  }

  let channelsTimer = null;
  function refreshChannelsSoon() {
    clearTimeout(channelsTimer);
    channelsTimer = setTimeout(refreshChannels, 300);
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
        `Welcome, ${state.me.name}! Join or create a channel on the left, or click someone online to message them.`));
      post('lobby', systemElement(
        'How it works: every action on this page is an HTTP call to the demo service, which drives the FreeIM ' +
        'node through imhelper; everything that arrives here came over this tab\'s WebSocket to the node.'));
    } else {
      post('lobby', systemElement('Reconnected.'));
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

  window.addEventListener('online', () => { if (!state.kicked) client.connect(); });
  setInterval(refreshChannels, 10000);

  if (state.me.name) $('me-name').textContent = state.me.name;
  openConversation('lobby');
  refreshChannels();
  client.connect();

  // For tests and the curious: window.freeimDemo.state / .client
  window.freeimDemo = { state, client };
})();
