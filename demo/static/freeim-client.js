/**
 * freeim-client.js — a small, dependency-free WebSocket client for FreeIM
 * nodes (the Rust `freeim-server` and .NET FreeIM ImServer alike).
 *
 * A FreeIM node only pushes: each text frame is one JSON message that a
 * business service sent through ImHelper. To connect, a client first asks its
 * business service for a URL (`ws://node/ws?token=…`); the token is valid for
 * 10 seconds and only once, so every (re)connection needs a fresh one. This
 * client does exactly that: it calls your `preConnect()` before each attempt,
 * decodes every frame as JSON, and reconnects with exponential backoff and
 * jitter whenever the socket drops, until you call `close()` — or until the
 * node closes it with a *kick* (ImHelper's `force_offline`: close code 4001
 * from `freeim-server`), after which it stays closed and emits `kicked`.
 *
 * A socket can also die silently (a phone switching networks): the browser
 * keeps believing it is open, and the node's pings are invisible to
 * JavaScript. So the client offers the `freeim.heartbeat.v1` subprotocol; a
 * `freeim-server` node with heartbeats on selects it and sends a binary frame
 * of its heartbeat interval after the handshake and with every ping. When
 * nothing at all arrives for 1.5 intervals plus 1 s, the client closes the
 * socket and reconnects (`close` with code 4000, "heartbeat timeout"). Nodes
 * that do not select it (FreeIM's .NET ImServer) work as before.
 *
 * Load it with `<script src="/freeim-client.js"></script>` (it defines
 * `window.FreeImClient`), or `require()` it in Node.js (22+ has a global
 * `WebSocket`; on older versions pass one, e.g. from the `ws` package).
 *
 * @example
 * const client = new FreeImClient({
 *   preConnect: async () => {
 *     const res = await fetch('/prev-connect', { method: 'POST', body: '{}' });
 *     const { url } = await res.json();
 *     return url;
 *   },
 * });
 * client.on('message', (msg) => console.log('pushed:', msg));
 * client.on('open', () => console.log('connected'));
 * client.on('close', (e) => console.log(`closed (${e.code}), retry in ${e.retryIn} ms`));
 * client.on('error', (err) => console.warn(err.message));
 * client.on('kicked', () => alert('Signed in elsewhere'));
 * client.connect();
 * // later: client.close();
 *
 * @license MIT
 */
(function (root, factory) {
  'use strict';
  const FreeImClient = factory();
  if (typeof module === 'object' && module.exports) {
    module.exports = FreeImClient;
    module.exports.FreeImClient = FreeImClient;
  } else {
    root.FreeImClient = FreeImClient;
  }
})(typeof globalThis !== 'undefined' ? globalThis : this, function () {
  'use strict';

  const EVENTS = ['message', 'open', 'close', 'error', 'kicked'];
  /** The subprotocol under which the node sends its heartbeat interval. */
  const HEARTBEAT_SUBPROTOCOL = 'freeim.heartbeat.v1';
  /** Slack (ms) added to 1.5 heartbeat intervals before a silent socket is given up. */
  const HEARTBEAT_GRACE = 1000;
  /** The close code (and reason) reported when the heartbeat stopped. */
  const HEARTBEAT_TIMEOUT = { code: 4000, reason: 'heartbeat timeout' };

  /**
   * @typedef {Object} FreeImClientOptions
   * @property {() => (string|Promise<string>)} preConnect
   *   Returns the WebSocket URL to connect to, with a fresh token (typically
   *   by asking your business service, which calls ImHelper's
   *   `prev_connect_server`). Called before every attempt. If it throws or
   *   rejects, the client emits `error` and retries with backoff.
   * @property {number} [minDelay=500] First retry delay, in milliseconds.
   * @property {number} [maxDelay=30000] Largest retry delay, in milliseconds.
   * @property {number} [factor=2] Growth of the delay after each failed attempt.
   * @property {number} [jitter=0.5] Fraction of each delay drawn at random
   *   (0 = none, 1 = "full jitter"), so many clients that lost the same node
   *   do not all come back at the same instant.
   * @property {number} [stableAfter=5000] A connection that stayed open this
   *   long (ms) resets the backoff to `minDelay`.
   * @property {number} [connectTimeout=10000] An attempt not open by then
   *   (ms) is abandoned and retried.
   * @property {number} [preConnectTimeout=10000] A `preConnect` that has not
   *   settled by then (ms; a business service that never answers) counts as
   *   failed: the client emits `error` and retries with backoff, and ignores
   *   whatever that call returns later.
   * @property {boolean} [heartbeat=true] Offer the `freeim.heartbeat.v1`
   *   subprotocol. When the node selects it, it sends a binary frame holding
   *   its heartbeat interval in milliseconds (ASCII decimal) after the
   *   handshake and with every ping; once that interval is known, a socket on
   *   which nothing at all arrives for 1.5 intervals plus 1000 ms is closed
   *   and retried like a dropped one (`close` with code 4000, reason
   *   `'heartbeat timeout'`, `wasOpen: true`). Binary frames are never
   *   emitted as `message`. (With the `ws` package, a node that selects no
   *   subprotocol fails the first handshake — "Server sent no subprotocol";
   *   the client then stops offering it and retries.)
   * @property {number[]} [kickCodes=[4001]] Close codes that mean the
   *   business service forced this client offline: the client does not
   *   reconnect and emits `kicked`. `freeim-server` sends 4001; FreeIM's
   *   .NET ImServer sends 1001 "disconnect" (pass `[1001]` for it, but note
   *   that `freeim-server` uses 1001 when it shuts down, which must not
   *   count as a kick).
   * @property {typeof WebSocket} [WebSocket] WebSocket constructor to use;
   *   defaults to the global one.
   */

  /**
   * @typedef {Object} CloseInfo
   * @property {number} code WebSocket close code (1006 = dropped without a
   *   close frame, e.g. the node died or the network went away; 4000 = the
   *   client gave the socket up because the node's heartbeat stopped).
   * @property {string} reason Close reason sent by the node, if any.
   * @property {boolean} wasOpen Whether this socket had opened.
   * @property {number|null} retryIn Milliseconds until the next attempt, or
   *   `null` when the client was closed and will not reconnect.
   */

  /**
   * A reconnecting FreeIM WebSocket client.
   *
   * States (`client.state`): `'idle'` (not started), `'connecting'`
   * (asking for a URL or opening the socket), `'open'`, `'waiting'` (backing
   * off before the next attempt), `'closed'` (after `close()`).
   */
  class FreeImClient {
    /**
     * @param {FreeImClientOptions} options
     */
    constructor(options) {
      if (!options || typeof options.preConnect !== 'function') {
        throw new TypeError('FreeImClient: options.preConnect must be a function returning the ws:// URL');
      }
      this._preConnect = options.preConnect;
      this._minDelay = positive(options.minDelay, 500);
      this._maxDelay = Math.max(positive(options.maxDelay, 30000), this._minDelay);
      this._factor = Math.max(positive(options.factor, 2), 1);
      this._jitter = Math.min(Math.max(options.jitter === undefined ? 0.5 : Number(options.jitter), 0), 1);
      this._stableAfter = positive(options.stableAfter, 5000);
      this._connectTimeout = positive(options.connectTimeout, 10000);
      this._preConnectTimeout = positive(options.preConnectTimeout, 10000);
      this._kickCodes = Array.isArray(options.kickCodes) ? options.kickCodes.map(Number) : [4001];
      this._heartbeat = options.heartbeat === undefined ? true : !!options.heartbeat;
      this._WebSocket = options.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
      if (!this._WebSocket) {
        throw new TypeError('FreeImClient: no WebSocket implementation; pass options.WebSocket');
      }
      /** @type {{[event: string]: Function[]}} */
      this._handlers = { message: [], open: [], close: [], error: [], kicked: [] };
      this._socket = null;
      this._timer = null;
      this._giveUp = null; // connect-timeout timer of the socket being opened
      this._watchdog = null; // heartbeat timer of the open socket
      this._attempt = 0; // failed attempts since the last stable connection
      this._generation = 0; // bumped on every attempt and on close(): stale callbacks check it
      /** @type {'idle'|'connecting'|'open'|'waiting'|'closed'} */
      this.state = 'idle';
    }

    /**
     * Registers `handler` for an event:
     * - `'message'` `(data, raw)`: a pushed message, decoded from JSON
     *   (`raw` is the frame's text).
     * - `'open'` `({attempt})`: a socket opened (`attempt` counts the
     *   failed attempts before it).
     * - `'close'` `(CloseInfo)`: a socket closed, or an attempt failed.
     * - `'error'` `(Error)`: `preConnect` failed, a frame was not JSON, a
     *   handler threw, or the socket reported an error. Informational: the
     *   client keeps reconnecting on its own.
     * - `'kicked'` `(CloseInfo)`: the node closed the socket with one of
     *   `kickCodes` (the business service forced this client offline, e.g.
     *   because it signed in elsewhere). The client is now `'closed'` and
     *   does not reconnect until `connect()` is called; `close` was emitted
     *   just before, with `retryIn: null`.
     *
     * @param {'message'|'open'|'close'|'error'|'kicked'} event
     * @param {Function} handler
     * @returns {() => void} a function that unregisters the handler
     */
    on(event, handler) {
      if (!EVENTS.includes(event)) {
        throw new TypeError(`FreeImClient: unknown event ${JSON.stringify(event)} (use ${EVENTS.join(', ')})`);
      }
      if (typeof handler !== 'function') throw new TypeError('FreeImClient: handler must be a function');
      this._handlers[event].push(handler);
      return () => this.off(event, handler);
    }

    /**
     * Unregisters a handler added with `on`.
     * @param {'message'|'open'|'close'|'error'} event
     * @param {Function} handler
     */
    off(event, handler) {
      const list = this._handlers[event];
      if (!list) return;
      const at = list.indexOf(handler);
      if (at >= 0) list.splice(at, 1);
    }

    /**
     * Starts connecting (and keeps reconnecting). While waiting to retry,
     * retries at once (e.g. when the browser reports it is back online).
     * Does nothing while connecting or open. Also restarts a closed client.
     * @returns {FreeImClient} this
     */
    connect() {
      if (this.state === 'connecting' || this.state === 'open') return this;
      this._clearTimer();
      this._attempt = this.state === 'waiting' ? this._attempt : 0;
      this._open();
      return this;
    }

    /**
     * Closes the socket and stops reconnecting. Emits `close` with
     * `retryIn: null` if a socket was open or opening.
     * @param {number} [code=1000]
     * @param {string} [reason]
     */
    close(code, reason) {
      this._generation += 1;
      this._clearTimer();
      const socket = this._socket;
      this._socket = null;
      const previous = this.state;
      this.state = 'closed';
      if (socket) {
        detach(socket);
        try {
          socket.close(code || 1000, reason || '');
        } catch (_) {
          /* already closing */
        }
        this._emit('close', { code: code || 1000, reason: reason || '', wasOpen: previous === 'open', retryIn: null });
      }
    }

    /** @private */
    async _open() {
      const generation = ++this._generation;
      this.state = 'connecting';
      let url;
      let hung = null;
      try {
        const timedOut = new Promise((_, reject) => {
          hung = setTimeout(
            () => reject(new Error(`no answer within ${this._preConnectTimeout} ms`)),
            this._preConnectTimeout,
          );
        });
        // A preConnect that throws synchronously rejects here too.
        url = await Promise.race([Promise.resolve().then(() => this._preConnect()), timedOut]);
        if (typeof url !== 'string' || !/^wss?:\/\//.test(url)) {
          throw new Error(`preConnect returned ${JSON.stringify(url)}, not a ws:// or wss:// URL`);
        }
      } catch (err) {
        if (generation !== this._generation) return;
        this._emit('error', wrap(err, 'preConnect failed'));
        this._retry(generation, { code: 1006, reason: 'preConnect failed', wasOpen: false });
        return;
      } finally {
        clearTimeout(hung);
      }
      if (generation !== this._generation) return; // closed or restarted meanwhile

      let socket;
      try {
        socket = this._heartbeat ? new this._WebSocket(url, [HEARTBEAT_SUBPROTOCOL]) : new this._WebSocket(url);
        socket.binaryType = 'arraybuffer';
      } catch (err) {
        this._emit('error', wrap(err, 'cannot open the WebSocket'));
        this._retry(generation, { code: 1006, reason: 'invalid URL', wasOpen: false });
        return;
      }
      this._socket = socket;
      let openedAt = 0;
      const giveUp = setTimeout(() => {
        this._giveUp = null;
        if (generation === this._generation && !openedAt) {
          detach(socket);
          try { socket.close(); } catch (_) { /* ignore */ }
          this._retry(generation, { code: 1006, reason: 'connect timeout', wasOpen: false });
        }
      }, this._connectTimeout);
      this._giveUp = giveUp;

      // The heartbeat: whether the node selected it, how long the socket may
      // stay silent (known once its first interval frame arrives), when it
      // was last heard from.
      let heartbeat = false;
      let silenceLimit = 0;
      let heardAt = 0;
      const watch = () => {
        this._watchdog = null;
        if (generation !== this._generation) return;
        const silent = Date.now() - heardAt;
        if (silent < silenceLimit) {
          this._watchdog = setTimeout(watch, silenceLimit - silent);
          return;
        }
        detach(socket);
        try { socket.close(HEARTBEAT_TIMEOUT.code, HEARTBEAT_TIMEOUT.reason); } catch (_) { /* ignore */ }
        this._lost(generation, openedAt, Object.assign({ wasOpen: true }, HEARTBEAT_TIMEOUT));
      };

      socket.onopen = () => {
        if (generation !== this._generation) return;
        clearTimeout(giveUp);
        openedAt = Date.now();
        heartbeat = socket.protocol === HEARTBEAT_SUBPROTOCOL;
        this.state = 'open';
        this._emit('open', { attempt: this._attempt });
      };
      socket.onmessage = (event) => {
        if (generation !== this._generation) return;
        heardAt = Date.now();
        if (typeof event.data !== 'string') {
          const interval = heartbeat ? heartbeatInterval(event.data) : 0;
          if (interval > 0) {
            silenceLimit = interval * 1.5 + HEARTBEAT_GRACE;
            if (this._watchdog === null) this._watchdog = setTimeout(watch, silenceLimit);
          }
          return;
        }
        const raw = event.data;
        let data;
        try {
          data = JSON.parse(raw);
        } catch (err) {
          const error = wrap(err, 'a pushed frame is not JSON');
          error.raw = raw;
          this._emit('error', error);
          return;
        }
        this._emit('message', data, raw);
      };
      socket.onerror = (event) => {
        if (generation !== this._generation) return;
        // The `ws` package fails a handshake that selects none of the
        // subprotocols it offered (a node with heartbeats off, FreeIM's .NET
        // ImServer): offer none from now on.
        if (!openedAt && event && /no subprotocol/.test(event.message)) this._heartbeat = false;
        // Browsers give no detail here; the close event follows with the code.
        this._emit('error', new Error(openedAt ? 'WebSocket error' : 'WebSocket connection failed'));
      };
      socket.onclose = (event) => {
        if (generation !== this._generation) return;
        const info = { code: event.code, reason: event.reason || '', wasOpen: !!openedAt };
        if (this._kickCodes.includes(event.code)) {
          this._generation += 1;
          this._clearTimer();
          this._socket = null;
          this.state = 'closed';
          const closed = Object.assign({}, info, { retryIn: null });
          this._emit('close', closed);
          this._emit('kicked', closed);
          return;
        }
        this._lost(generation, openedAt, info);
      };
    }

    /** @private A socket dropped or was given up: one that stayed open long
     * enough resets the backoff; then the next attempt is scheduled. */
    _lost(generation, openedAt, info) {
      this._clearTimer();
      if (openedAt && Date.now() - openedAt >= this._stableAfter) this._attempt = 0;
      this._retry(generation, info);
    }

    /** @private Schedules the next attempt and reports the close. */
    _retry(generation, info) {
      if (generation !== this._generation) return;
      this._socket = null;
      const delay = this._nextDelay();
      this.state = 'waiting';
      this._timer = setTimeout(() => {
        this._timer = null;
        if (generation === this._generation) this._open();
      }, delay);
      this._emit('close', Object.assign({}, info, { retryIn: delay }));
    }

    /** @private Exponential backoff with jitter. */
    _nextDelay() {
      const base = Math.min(this._maxDelay, this._minDelay * Math.pow(this._factor, this._attempt));
      this._attempt += 1;
      return Math.round(base * (1 - this._jitter * Math.random()));
    }

    /** @private */
    _clearTimer() {
      if (this._timer !== null) {
        clearTimeout(this._timer);
        this._timer = null;
      }
      if (this._giveUp !== null) {
        clearTimeout(this._giveUp);
        this._giveUp = null;
      }
      if (this._watchdog !== null) {
        clearTimeout(this._watchdog);
        this._watchdog = null;
      }
    }

    /** @private Calls the handlers; one that throws is reported, not fatal. */
    _emit(event, ...args) {
      for (const handler of this._handlers[event].slice()) {
        try {
          handler(...args);
        } catch (err) {
          if (event === 'error') {
            if (typeof console !== 'undefined') console.error(err);
          } else {
            this._emit('error', wrap(err, `a '${event}' handler threw`));
          }
        }
      }
    }
  }

  function positive(value, fallback) {
    const n = Number(value);
    return value !== undefined && Number.isFinite(n) && n > 0 ? n : fallback;
  }

  function wrap(err, context) {
    const error = new Error(`${context}: ${err && err.message ? err.message : String(err)}`);
    error.cause = err;
    return error;
  }

  /** The heartbeat interval (ms) a binary frame holds, or 0 if it holds none. */
  function heartbeatInterval(data) {
    let bytes = null;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (!bytes || bytes.length === 0 || bytes.length > 9) return 0;
    let interval = 0;
    for (const byte of bytes) {
      if (byte < 0x30 || byte > 0x39) return 0;
      interval = interval * 10 + (byte - 0x30);
    }
    return interval;
  }

  function detach(socket) {
    socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
  }

  return FreeImClient;
});
