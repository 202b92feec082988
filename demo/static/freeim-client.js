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
   *   close frame, e.g. the node died or the network went away).
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
      this._WebSocket = options.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
      if (!this._WebSocket) {
        throw new TypeError('FreeImClient: no WebSocket implementation; pass options.WebSocket');
      }
      /** @type {{[event: string]: Function[]}} */
      this._handlers = { message: [], open: [], close: [], error: [], kicked: [] };
      this._socket = null;
      this._timer = null;
      this._giveUp = null; // connect-timeout timer of the socket being opened
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
        socket = new this._WebSocket(url);
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

      socket.onopen = () => {
        if (generation !== this._generation) return;
        clearTimeout(giveUp);
        openedAt = Date.now();
        this.state = 'open';
        this._emit('open', { attempt: this._attempt });
      };
      socket.onmessage = (event) => {
        if (generation !== this._generation) return;
        const raw = typeof event.data === 'string' ? event.data : String(event.data);
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
      socket.onerror = () => {
        if (generation !== this._generation) return;
        // Browsers give no detail here; the close event follows with the code.
        this._emit('error', new Error(openedAt ? 'WebSocket error' : 'WebSocket connection failed'));
      };
      socket.onclose = (event) => {
        if (generation !== this._generation) return;
        clearTimeout(giveUp);
        const info = { code: event.code, reason: event.reason || '', wasOpen: !!openedAt };
        if (this._kickCodes.includes(event.code)) {
          this._generation += 1;
          this._socket = null;
          this.state = 'closed';
          const closed = Object.assign({}, info, { retryIn: null });
          this._emit('close', closed);
          this._emit('kicked', closed);
          return;
        }
        if (openedAt && Date.now() - openedAt >= this._stableAfter) this._attempt = 0;
        this._retry(generation, info);
      };
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

  function detach(socket) {
    socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
  }

  return FreeImClient;
});
