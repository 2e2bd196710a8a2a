// The dashboard's entry point: sign-in, the two views (#jobs, #connections), and the event stream
// that keeps them live.

import { Api, ApiError } from './api.js';
import { ConnectionsView } from './connections.js';
import { byId, h, replaceChildren } from './dom.js';
import { JobsView } from './jobs.js';
import { JobNotifications } from './notifications.js';
import { RetrainDialog } from './retrain.js';
import { Toasts } from './toasts.js';

const TOKEN_KEY = 'explorer-jobs.token';
const VIEWS = ['jobs', 'connections'];
// The API sits next to the page: '' at the site root, '/prefix' when served under a path.
const BASE_URL = new URL('.', document.baseURI).pathname.replace(/\/$/, '');

class Dashboard {
  constructor() {
    this.token = sessionStorage.getItem(TOKEN_KEY);
    this.notifications = null;
    this.connectionNames = new Map();
    this.toasts = new Toasts(byId('toasts'));
    this.api = new Api({
      baseUrl: BASE_URL,
      token: () => this.token,
      onUnauthorized: () => this.signOut('Your session has expired or the token was refused. Sign in again.'),
    });
    this.jobs = new JobsView({
      api: this.api, toasts: this.toasts, connectionName: (id) => this.connectionNames.get(id) ?? null,
    });
    this.retrain = new RetrainDialog({
      api: this.api,
      onQueued: (jobId) => {
        window.location.hash = '#jobs';
        this.jobs.showQueued(jobId);
      },
    });
    this.connections = new ConnectionsView({
      api: this.api,
      toasts: this.toasts,
      onChange: (connections) => {
        this.connectionNames = new Map(connections.map((c) => [c.id, c.name]));
      },
      onRetrain: (connection) => this.retrain.open(connection),
      confirm: (message, action) => this.confirm(message, action),
    });

    byId('login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.signIn(byId('token-input').value.trim());
    });
    byId('dev-login-button').addEventListener('click', () => this.signInAsDemo());
    byId('sign-out').addEventListener('click', () => this.signOut());
    window.addEventListener('hashchange', () => this.showView());
  }

  async start() {
    if (this.token) {
      await this.enter();
    } else {
      this.showLogin();
    }
  }

  // --- session ---

  async signIn(token, { quiet = false } = {}) {
    const error = byId('login-error');
    error.textContent = '';
    if (!token) {
      error.textContent = 'Paste a token first.';
      return;
    }
    this.token = token;
    try {
      await this.api.queues();  // any authenticated call tells whether the token verifies
    } catch (problem) {
      this.token = null;
      if (!quiet) {
        error.textContent = problem instanceof ApiError && problem.status === 401
          ? `This token was refused: ${problem.message}`
          : `Could not reach the service: ${problem.message}`;
      }
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    byId('token-input').value = '';
    await this.enter();
  }

  async signInAsDemo() {
    const response = await fetch(`${BASE_URL}/dashboard/dev-login`, { cache: 'no-store' });
    if (!response.ok) {
      byId('login-error').textContent = 'The demo sign-in is only available under explorer-jobs dev.';
      return;
    }
    await this.signIn((await response.json()).token);
  }

  signOut(message = '') {
    this.notifications?.close();
    this.notifications = null;
    this.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
    this.showLogin();
    byId('login-error').textContent = message;
  }

  async showLogin() {
    byId('app').hidden = true;
    byId('login-view').hidden = false;
    byId('session').hidden = true;
    this.setLiveStatus('offline', 'Offline');
    // Offered only where the server says the dev stack runs (the route is 404 everywhere else).
    const dev = await fetch(`${BASE_URL}/dashboard/dev-login`, { method: 'GET', cache: 'no-store' })
      .then((response) => response.ok).catch(() => false);
    byId('dev-login').hidden = !dev;
  }

  async enter() {
    byId('login-view').hidden = true;
    byId('app').hidden = false;
    byId('session').hidden = false;
    byId('signed-in-as').textContent = `Signed in as ${tokenSubject(this.token) ?? 'unknown user'}`;
    this.showView();
    this.startNotifications();
    await this.connections.reload();  // first: the jobs list names connections
    await this.jobs.reload();
  }

  startNotifications() {
    this.notifications?.close();
    this.notifications = new JobNotifications({ baseUrl: BASE_URL, token: () => this.token })
      .on('*', (event) => this.jobs.handleEvent(event))
      .on('job_completed', (event) => {
        if (event.jobType === 'schema_training') this.connections.reloadSoon();  // lastTrainedAt moved
      })
      .on('connected', ({ reconnected }) => {
        this.setLiveStatus('live', 'Live');
        // Events missed while away are replayed from the last one seen; if none was seen yet there is
        // nothing to replay from, so read the list again to be sure it is current.
        if (reconnected) this.jobs.reload();
      })
      .on('reconnecting', ({ delayMs }) => {
        this.setLiveStatus('reconnecting', `Reconnecting in ${Math.ceil(delayMs / 1000)} s…`);
      })
      .on('unauthorized', () => this.signOut('Your session has expired. Sign in again.'))
      .start();
  }

  setLiveStatus(state, text) {
    const status = byId('live-status');
    status.dataset.state = state;
    status.textContent = text;
  }

  // --- views ---

  showView() {
    const wanted = window.location.hash.replace('#', '');
    const view = VIEWS.includes(wanted) ? wanted : 'jobs';
    for (const name of VIEWS) {
      byId(`${name}-view`).hidden = name !== view;
      const link = byId(`nav-${name}`);
      if (name === view) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }

  /** A modal yes/no question; resolves true when the action button is chosen. */
  confirm(message, action) {
    const dialog = byId('confirm-dialog');
    replaceChildren(byId('confirm-message'), message);
    byId('confirm-ok').textContent = action;
    dialog.returnValue = '';
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    });
  }
}

/** The token's `sub`, for display only (the server verifies the token; the page never trusts this). */
function tokenSubject(token) {
  try {
    const payload = token.split('.')[1].replaceAll('-', '+').replaceAll('_', '/');
    return JSON.parse(atob(payload)).sub ?? null;
  } catch {
    return null;
  }
}

const dashboard = new Dashboard();
dashboard.start().catch((error) => {
  // Nothing else would show it: the page would just stay blank.
  document.body.prepend(h('p', { class: 'error', role: 'alert' }, `The dashboard failed to start: ${error.message}`));
});
