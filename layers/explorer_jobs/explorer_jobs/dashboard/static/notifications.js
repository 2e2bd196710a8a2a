// JobNotifications: the caller's job events over Server-Sent Events, with reconnects that lose nothing.
//
// EventSource cannot send an Authorization header, so each connection first trades the bearer token
// for a short-lived, single-use ticket (POST /api/jobs/notifications/ticket) and opens
// /api/jobs/notifications/stream?ticket=...&lastEventId=... . Because a ticket works once, the
// browser's own reconnect (same URL) would always be refused: on any error this client closes the
// EventSource and reconnects itself, with a fresh ticket, after an exponential, jittered, capped delay,
// passing the id of the last event it saw so the server replays what was missed.
//
// Usage:
//   const events = new JobNotifications({ token: () => sessionStorage.getItem('token') });
//   events.on('job_completed', (e) => console.log(e.jobId, e.result));
//   events.on('*', (e) => console.log(e.type, e.progress));
//   events.start();
//   ...
//   events.close();

export const JOB_EVENT_TYPES = Object.freeze([
  'job_queued', 'job_started', 'job_progress', 'job_retrying',
  'job_completed', 'job_failed', 'job_cancelled',
]);

// The client's own life events; `on('*')` does not receive these, only job events.
export const CONNECTION_EVENT_TYPES = Object.freeze(['connected', 'reconnecting', 'unauthorized']);

const DEFAULTS = Object.freeze({
  baseUrl: '',               // same origin
  lastEventId: null,         // resume after this event id (from an earlier session), if any
  minDelayMs: 1000,          // first reconnect delay
  maxDelayMs: 30000,         // the cap: a long outage is retried every 15-30 s, not hammered
  openTimeoutMs: 15000,      // a stream that has not opened by then is treated as failed
});

export class TicketError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'TicketError';
    this.status = status;
  }
}

export class JobNotifications {
  /**
   * @param {object} options
   * @param {string | (() => string | null)} options.token the bearer token, or a function that returns
   *   the current one (read again before every reconnect, so a refreshed token is picked up)
   * @param {string} [options.baseUrl] where the API lives; '' for the page's own origin
   * @param {string | null} [options.lastEventId] replay the events after this id on the first connect
   * @param {number} [options.minDelayMs] first reconnect delay (doubles per failed attempt)
   * @param {number} [options.maxDelayMs] reconnect delay cap
   * @param {number} [options.openTimeoutMs] how long a connection may take to open
   */
  constructor(options) {
    this.options = { ...DEFAULTS, ...options };
    if (!this.options.token) throw new TypeError('JobNotifications needs a token');
    this.lastEventId = this.options.lastEventId;
    this.handlers = new Map();    // type -> Set of callbacks
    this.source = null;           // the current EventSource
    this.attempt = 0;             // failed connects since the last open
    this.timer = null;            // pending reconnect or open timeout
    this.closed = true;
    this.generation = 0;          // bumps on every (re)connect; late callbacks of old ones are ignored
  }

  /** Call `callback(event)` for events of `type`: a job event name, '*' (every job event), or one of
   *  'connected' ({reconnected}), 'reconnecting' ({delayMs, attempt, reason}), 'unauthorized' ({status}). */
  on(type, callback) {
    if (!this.handlers.has(type)) {
      this.handlers.set(type, new Set());
      // A type beyond the contract's seven (a newer server's) must be listened for on the open stream
      // too; the seven are listened for on every stream already.
      const extra = this.isJobEventType(type) && !JOB_EVENT_TYPES.includes(type);
      if (this.source && extra) this.listen(this.source, type, this.generation);
    }
    this.handlers.get(type).add(callback);
    return this;
  }

  off(type, callback) {
    this.handlers.get(type)?.delete(callback);
    return this;
  }

  /** Connect (does nothing if already started). */
  start() {
    if (!this.closed) return this;
    this.closed = false;
    this.connect(false);
    return this;
  }

  /** Close the stream and stop reconnecting. `start()` may be called again later. */
  close() {
    this.closed = true;
    this.generation += 1;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.source) this.source.close();
    this.source = null;
  }

  get connected() {
    return this.source !== null && this.source.readyState === EventSource.OPEN;
  }

  // --- internals ---

  isJobEventType(type) {
    return type !== '*' && !CONNECTION_EVENT_TYPES.includes(type);
  }

  async connect(reconnected) {
    const generation = ++this.generation;
    let ticket;
    try {
      ticket = await this.fetchTicket();
    } catch (error) {
      if (generation !== this.generation) return;
      if (error instanceof TicketError && error.status === 401) {
        // A token that does not verify will not start verifying: stop, and let the page sign in again.
        this.close();
        this.emit('unauthorized', { status: 401, message: error.message });
        return;
      }
      this.scheduleReconnect(`ticket: ${error.message}`);
      return;
    }
    if (generation !== this.generation) return;  // closed (or restarted) while the ticket was on its way

    const source = new EventSource(this.streamUrl(ticket));
    this.source = source;
    this.timer = setTimeout(() => this.fail(generation, 'the stream did not open in time'),
      this.options.openTimeoutMs);
    source.addEventListener('open', () => {
      if (generation !== this.generation) return;
      clearTimeout(this.timer);
      this.timer = null;
      this.attempt = 0;
      this.emit('connected', { reconnected });
    });
    // Any error ends this EventSource for good: its own retry would reuse the spent ticket.
    source.addEventListener('error', () => this.fail(generation, 'the stream was interrupted'));
    for (const type of this.jobEventTypes()) this.listen(source, type, generation);
  }

  jobEventTypes() {
    const types = new Set(JOB_EVENT_TYPES);
    for (const type of this.handlers.keys()) if (this.isJobEventType(type)) types.add(type);
    return types;
  }

  listen(source, type, generation) {
    source.addEventListener(type, (message) => {
      if (generation !== this.generation) return;
      if (message.lastEventId) this.lastEventId = message.lastEventId;
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;  // not ours to guess at; the contract says JSON
      }
      this.emit(type, { ...data, id: message.lastEventId });
    });
  }

  fail(generation, reason) {
    if (generation !== this.generation || this.closed) return;
    this.generation += 1;  // silence the failed source's remaining callbacks
    if (this.source) this.source.close();
    this.source = null;
    this.scheduleReconnect(reason);
  }

  scheduleReconnect(reason) {
    clearTimeout(this.timer);
    const delayMs = this.nextDelay();
    this.attempt += 1;
    this.emit('reconnecting', { delayMs, attempt: this.attempt, reason });
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.closed) this.connect(true);
    }, delayMs);
  }

  // Exponential from minDelayMs, capped at maxDelayMs, with "equal jitter" (half fixed, half random)
  // so that many tabs cut off by the same restart do not come back in the same millisecond.
  nextDelay() {
    const { minDelayMs, maxDelayMs } = this.options;
    const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** this.attempt);
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }

  currentToken() {
    const { token } = this.options;
    return typeof token === 'function' ? token() : token;
  }

  async fetchTicket() {
    const token = this.currentToken();
    if (!token) throw new TicketError(401, 'no token');
    const response = await fetch(`${this.options.baseUrl}/api/jobs/notifications/ticket`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      cache: 'no-store',
    });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail ?? detail;
      } catch { /* a proxy's HTML error page: keep the status text */ }
      throw new TicketError(response.status, String(detail));
    }
    return (await response.json()).ticket;
  }

  streamUrl(ticket) {
    const query = new URLSearchParams({ ticket });
    if (this.lastEventId) query.set('lastEventId', this.lastEventId);
    return `${this.options.baseUrl}/api/jobs/notifications/stream?${query}`;
  }

  emit(type, payload) {
    const targets = [...(this.handlers.get(type) ?? [])];
    if (this.isJobEventType(type)) targets.push(...(this.handlers.get('*') ?? []));
    for (const callback of targets) {
      try {
        callback(payload);
      } catch (error) {
        // One broken handler must not stop the others, nor the stream.
        console.error(`JobNotifications: a '${type}' handler failed`, error);
      }
    }
  }
}
