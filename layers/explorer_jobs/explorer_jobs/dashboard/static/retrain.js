// The re-train dialog: pick schemas and tables of a connection and the parts to read, then queue a
// schema training (POST /api/connections/{id}/train-schema).
//
// Selection model: a schema is either not chosen, chosen whole (every table it has when the job runs,
// tables created meanwhile included), or chosen for some tables only. Choosing a table chooses its
// schema; clearing a schema's last table clears the schema.

import { byId, count, h, randomKey, replaceChildren } from './dom.js';

const OPTIONS = [
  ['includeColumns', 'Columns'],
  ['includeTypes', 'Column types'],
  ['includeConstraints', 'Constraints (primary keys, unique, checks)'],
  ['includeIndexes', 'Indexes'],
  ['includeForeignKeys', 'Foreign keys'],
];

export class RetrainDialog {
  /**
   * @param {object} deps
   * @param {import('./api.js').Api} deps.api
   * @param {(jobId: string) => void} deps.onQueued called with the new job's id once it is queued
   */
  constructor({ api, onQueued }) {
    this.api = api;
    this.onQueued = onQueued;
    this.dialog = byId('retrain-dialog');
    this.list = byId('retrain-schemas');
    this.status = byId('retrain-status');
    this.summary = byId('retrain-summary');
    this.error = byId('retrain-error');
    this.start = byId('retrain-start');
    this.connection = null;
    this.schemas = [];              // [{name, tables}] as listed by the database
    this.selection = new Map();     // schema name -> Set of chosen table names
    this.items = new Map();         // schema name -> its checkbox, table list and table checkboxes
    this.loading = 0;               // bumps per load: a late answer for an earlier opening is dropped
    this.lastAttempt = null;        // {body, key}: resending the same body reuses its idempotency key

    replaceChildren(byId('retrain-options'), h('legend', {}, 'Read for each table'),
      OPTIONS.map(([name, label]) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', name, checked: true }), ` ${label}`)));
    byId('retrain-select-all').addEventListener('click', () => this.selectAll());
    byId('retrain-clear-all').addEventListener('click', () => this.clearAll());
    byId('retrain-close').addEventListener('click', () => this.dialog.close());
    byId('retrain-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  /** Open for a connection ({id, name}) and load its schemas. */
  open(connection) {
    this.connection = connection;
    this.lastAttempt = null;
    byId('retrain-connection').textContent = connection.name;
    replaceChildren(this.error);
    this.dialog.showModal();
    this.load();
  }

  async load() {
    const loading = ++this.loading;
    this.schemas = [];
    this.selection.clear();
    this.items.clear();
    this.list.replaceChildren();
    this.list.setAttribute('aria-busy', 'true');
    replaceChildren(this.status, h('span', { class: 'spinner', 'aria-hidden': 'true' }),
      ` Loading the schemas of ${this.connection.name}…`);
    this.updateSummary();
    try {
      const { schemas } = await this.api.listSchemas(this.connection.id);
      if (loading !== this.loading) return;
      this.schemas = schemas;
      this.status.replaceChildren();
      this.renderSchemas();
      this.selectAll();  // the usual re-train is everything; narrowing it is the exception
    } catch (error) {
      if (loading !== this.loading) return;
      replaceChildren(this.status, h('span', { class: 'error' }, `Could not list the schemas: ${error.message} `),
        h('button', { type: 'button', class: 'small', onclick: () => this.load() }, 'Try again'));
    } finally {
      if (loading === this.loading) this.list.removeAttribute('aria-busy');
    }
  }

  renderSchemas() {
    if (!this.schemas.length) {
      replaceChildren(this.list, h('li', { class: 'muted' }, 'This database has no schemas to train.'));
      return;
    }
    this.schemas.forEach((schema, index) => {
      const checkbox = h('input', { type: 'checkbox', id: `rs-${index}`,
        onchange: () => this.toggleSchema(schema, checkbox.checked) });
      const tableList = h('fieldset', { id: `rt-${index}`, class: 'table-list', hidden: true },
        h('legend', { class: 'visually-hidden' }, `Tables of ${schema.name}`));
      const disclosure = h('button', { type: 'button', class: 'disclosure small', 'aria-expanded': 'false',
        'aria-controls': tableList.id, 'aria-label': `Tables of ${schema.name} (${schema.tables.length})`,
        disabled: schema.tables.length === 0,
        onclick: () => this.toggleTables(schema, disclosure, tableList) },
      count(schema.tables.length, 'table'));
      this.items.set(schema.name, { checkbox, tableList, tableBoxes: null });
      this.list.append(h('li', { class: 'schema-item' },
        h('div', { class: 'schema-row' }, checkbox, h('label', { for: checkbox.id }, schema.name), disclosure),
        tableList));
    });
  }

  // Table checkboxes are made on first opening: a schema of thousands of tables costs nothing until then.
  toggleTables(schema, disclosure, tableList) {
    const item = this.items.get(schema.name);
    if (!item.tableBoxes) {
      item.tableBoxes = new Map(schema.tables.map((table) => {
        const box = h('input', { type: 'checkbox', onchange: () => this.toggleTable(schema, table, box.checked) });
        tableList.append(h('label', { class: 'check' }, box, ` ${table}`));
        return [table, box];
      }));
      this.syncSchema(schema);
    }
    const expanded = disclosure.getAttribute('aria-expanded') === 'true';
    disclosure.setAttribute('aria-expanded', String(!expanded));
    tableList.hidden = expanded;
  }

  toggleSchema(schema, chosen) {
    if (chosen) this.selection.set(schema.name, new Set(schema.tables));
    else this.selection.delete(schema.name);
    this.syncSchema(schema);
  }

  toggleTable(schema, table, chosen) {
    const tables = this.selection.get(schema.name) ?? new Set();
    if (chosen) tables.add(table);
    else tables.delete(table);
    if (tables.size) this.selection.set(schema.name, tables);
    else this.selection.delete(schema.name);
    this.syncSchema(schema);
  }

  selectAll() {
    for (const schema of this.schemas) this.toggleSchema(schema, true);
  }

  clearAll() {
    for (const schema of this.schemas) this.toggleSchema(schema, false);
  }

  /** Make a schema's checkboxes show the selection: checked, unchecked, or mixed for some tables. */
  syncSchema(schema) {
    const item = this.items.get(schema.name);
    const chosen = this.selection.get(schema.name);
    const some = chosen !== undefined && chosen.size < schema.tables.length;
    item.checkbox.checked = chosen !== undefined;
    item.checkbox.indeterminate = some;  // exposed to assistive technology as "mixed"
    for (const [table, box] of item.tableBoxes ?? []) box.checked = chosen?.has(table) ?? false;
    this.updateSummary();
  }

  updateSummary() {
    const schemas = this.selection.size;
    const tables = [...this.selection.values()].reduce((sum, chosen) => sum + chosen.size, 0);
    this.summary.textContent = schemas
      ? `${count(schemas, 'schema')}, ${count(tables, 'table')}`
      : 'Nothing selected';
    this.start.disabled = schemas === 0;
  }

  requestBody() {
    const body = { schemas: [], options: {} };
    const tables = {};
    for (const schema of this.schemas) {
      const chosen = this.selection.get(schema.name);
      if (!chosen) continue;
      body.schemas.push(schema.name);
      if (chosen.size < schema.tables.length) tables[schema.name] = [...chosen];
    }
    if (Object.keys(tables).length) body.tables = tables;
    const form = new FormData(byId('retrain-form'));
    for (const [name] of OPTIONS) body.options[name] = form.has(name);
    return body;
  }

  async submit() {
    if (!this.selection.size) return;
    const body = this.requestBody();
    const text = JSON.stringify(body);
    if (this.lastAttempt?.body !== text) this.lastAttempt = { body: text, key: randomKey() };
    this.start.disabled = true;
    this.start.textContent = 'Starting…';
    replaceChildren(this.error);
    try {
      const accepted = await this.api.trainSchema(this.connection.id, body, this.lastAttempt.key);
      this.dialog.close();
      this.onQueued(accepted.jobId);
    } catch (error) {
      this.error.textContent = `Could not start the training: ${error.message}`;
    } finally {
      this.start.textContent = 'Start training';
      this.updateSummary();
    }
  }
}
