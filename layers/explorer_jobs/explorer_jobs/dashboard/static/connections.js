// The connections view: the user's saved databases; add (and test), delete, re-train, and the cached
// schema with what changed since the previous version.

import { ApiError } from './api.js';
import { byId, h, replaceChildren, timeElement } from './dom.js';
import { renderChanges, renderSchemaCache } from './schema-view.js';

const DIALECT_LABELS = { postgresql: 'PostgreSQL', mysql: 'MySQL / MariaDB', sqlite: 'SQLite' };
const DEFAULT_PORTS = { postgresql: '5432', mysql: '3306' };

export class ConnectionsView {
  /**
   * @param {object} deps
   * @param {import('./api.js').Api} deps.api
   * @param {import('./toasts.js').Toasts} deps.toasts
   * @param {(connections: object[]) => void} deps.onChange called with the list whenever it is (re)loaded
   * @param {(connection: object) => void} deps.onRetrain opens the re-train dialog
   * @param {(message: string, action: string) => Promise<boolean>} deps.confirm
   */
  constructor({ api, toasts, onChange, onRetrain, confirm }) {
    Object.assign(this, { api, toasts, onChange, onRetrain, confirm });
    this.connections = [];
    this.reloadTimer = null;
    this.tbody = byId('connections-body');
    this.empty = byId('connections-empty');
    this.form = byId('connection-form');
    this.formStatus = byId('connection-form-status');
    this.schemaDialog = byId('schema-dialog');

    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.save(event.submitter?.value === 'save-and-test');
    });
    this.form.elements.dialect.addEventListener('change', () => this.showDialectFields());
    byId('schema-dialog-close').addEventListener('click', () => this.schemaDialog.close());
    this.showDialectFields();
  }

  async reload() {
    try {
      const { connections } = await this.api.listConnections();
      this.connections = connections;
      this.render();
      this.onChange(connections);
    } catch (error) {
      this.toasts.show({ title: 'Could not load connections', body: error.message, kind: 'error' });
    }
  }

  /** Reload a little later, once (a training finished and moved `lastTrainedAt`). */
  reloadSoon() {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.reload(), 300);
  }

  render() {
    this.empty.hidden = this.connections.length > 0;
    replaceChildren(this.tbody, this.connections.map((connection) => this.renderRow(connection)));
  }

  renderRow(connection) {
    const status = h('span', { class: 'test-result', role: 'status' });
    const name = connection.name;
    return h('tr', { 'data-connection-id': connection.id },
      h('th', { scope: 'row' }, name),
      h('td', {}, DIALECT_LABELS[connection.dialect] ?? connection.dialect,
        h('div', { class: 'muted small' }, describeWhere(connection))),
      h('td', {}, connection.trainingSchedule ? h('code', {}, connection.trainingSchedule)
        : h('span', { class: 'muted' }, 'none')),
      h('td', {}, timeElement(connection.lastTrainedAt)),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'small primary', 'aria-label': `Re-train ${name}`,
          onclick: () => this.onRetrain(connection) }, 'Re-train…'),
        h('button', { type: 'button', class: 'small', 'aria-label': `Test ${name}`,
          onclick: () => this.test(connection, status) }, 'Test'),
        h('button', { type: 'button', class: 'small', 'aria-label': `Schema of ${name}`,
          onclick: () => this.showSchema(connection) }, 'Schema'),
        h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete ${name}`,
          onclick: () => this.remove(connection) }, 'Delete'),
        status));
  }

  async test(connection, status) {
    status.className = 'test-result';
    status.textContent = 'Testing…';
    try {
      const { latencyMs } = await this.api.testConnection(connection.id);
      status.className = 'test-result ok';
      status.textContent = `Connected in ${Math.round(latencyMs)} ms`;
      return true;
    } catch (error) {
      status.className = 'test-result error';
      status.textContent = `Cannot connect: ${error.message}`;
      return false;
    }
  }

  // --- add ---

  showDialectFields() {
    const dialect = this.form.elements.dialect.value;
    const isSqlite = dialect === 'sqlite';
    for (const field of this.form.querySelectorAll('[data-server-only]')) {
      field.hidden = isSqlite;
      for (const input of field.querySelectorAll('input')) input.disabled = isSqlite;
    }
    this.form.elements.port.placeholder = DEFAULT_PORTS[dialect] ?? '';
    byId('connection-database-label').textContent = isSqlite ? 'File path on the server' : 'Database';
  }

  formBody() {
    const form = new FormData(this.form);
    const body = { name: form.get('name').trim(), dialect: form.get('dialect'), database: form.get('database').trim() };
    if (body.dialect !== 'sqlite') {
      body.host = form.get('host').trim();
      body.username = form.get('username').trim();
      body.password = form.get('password');
      const port = form.get('port').trim();
      if (port) body.port = Number(port);
    }
    // Left empty: the deployment's weekly default; "none" turns scheduled re-training off.
    const schedule = form.get('trainingSchedule').trim();
    if (schedule.toLowerCase() === 'none') body.trainingSchedule = null;
    else if (schedule) body.trainingSchedule = schedule;
    return body;
  }

  async save(thenTest) {
    const submit = this.form.querySelectorAll('button[type=submit]');
    submit.forEach((button) => { button.disabled = true; });
    this.formStatus.className = '';
    this.formStatus.textContent = 'Saving…';
    try {
      const connection = await this.api.createConnection(this.formBody());
      this.form.reset();
      this.showDialectFields();
      await this.reload();
      this.formStatus.className = 'ok';
      this.formStatus.textContent = `Saved “${connection.name}”.`;
      if (thenTest) {
        const row = this.tbody.querySelector(`tr[data-connection-id="${CSS.escape(connection.id)}"]`);
        const status = row?.querySelector('.test-result') ?? h('span');
        const ok = await this.test(connection, status);
        this.formStatus.className = ok ? 'ok' : 'error';
        this.formStatus.textContent = `Saved “${connection.name}”. ${status.textContent}.`;
      }
    } catch (error) {
      this.formStatus.className = 'error';
      this.formStatus.textContent = `Not saved: ${error.message}`;
    } finally {
      submit.forEach((button) => { button.disabled = false; });
    }
  }

  // --- delete ---

  async remove(connection) {
    const confirmed = await this.confirm(
      `Delete “${connection.name}”? Its schema cache is dropped and its queued and running jobs are cancelled.`,
      'Delete');
    if (!confirmed) return;
    try {
      await this.api.deleteConnection(connection.id);
      this.toasts.show({ title: 'Connection deleted', body: connection.name });
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) {
        this.toasts.show({ title: 'Could not delete the connection', body: error.message, kind: 'error' });
      }
    }
    await this.reload();
  }

  // --- cached schema ---

  async showSchema(connection) {
    byId('schema-dialog-title').textContent = `Cached schema: ${connection.name}`;
    const body = byId('schema-dialog-body');
    replaceChildren(body, h('p', { role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }),
      ' Loading the cached schema…'));
    this.schemaDialog.showModal();
    let cache;
    try {
      cache = await this.api.schemaCache(connection.id);
    } catch (error) {
      const never = error instanceof ApiError && error.status === 404;
      replaceChildren(body, h('p', { class: never ? 'muted' : 'error' },
        never ? 'This connection has not been trained yet.' : `Could not load the schema: ${error.message}`),
      never ? h('button', { type: 'button', class: 'primary', onclick: () => {
        this.schemaDialog.close();
        this.onRetrain(connection);
      } }, 'Re-train…') : null);
      return;
    }
    const changes = h('div', { role: 'status' }, 'Loading what changed…');
    replaceChildren(body,
      h('section', { 'aria-labelledby': 'changes-title' }, h('h3', { id: 'changes-title' },
        'What changed since the previous version'), changes),
      h('section', { 'aria-labelledby': 'cache-title' }, h('h3', { id: 'cache-title' }, 'Schema'),
        renderSchemaCache(cache)));
    replaceChildren(changes, await this.describeChanges(cache));
  }

  // The changes are part of the result of the job that made the version; jobs expire after some days.
  async describeChanges(cache) {
    try {
      const job = await this.api.getJob(cache.jobId);
      if (!job.result?.changes) return h('p', { class: 'muted' }, 'The training job recorded no changes.');
      return renderChanges(job.result.changes, { firstVersion: !job.result.previousVersion });
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        return h('p', { class: 'muted' },
          'The training job that made this version has expired, and its list of changes with it.');
      }
      return h('p', { class: 'error' }, `Could not load the changes: ${error.message}`);
    }
  }
}

function describeWhere(connection) {
  if (connection.dialect === 'sqlite') return connection.database;
  const port = connection.port ? `:${connection.port}` : '';
  const database = connection.database ? `/${connection.database}` : '';
  return `${connection.username}@${connection.host}${port}${database}`;
}
