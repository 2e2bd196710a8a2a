// Rendering a schema cache (GET /api/connections/{id}/schema-cache), a training result, and the
// changes between two cache versions (a training job's `result.changes`).

import { count, formatDateTime, h } from './dom.js';

const OPTION_LABELS = {
  includeColumns: 'Columns',
  includeTypes: 'Types',
  includeConstraints: 'Constraints',
  includeIndexes: 'Indexes',
  includeForeignKeys: 'Foreign keys',
};
const TABLE_PART_LABELS = {
  primaryKey: 'primary key',
  uniqueConstraints: 'unique constraints',
  checkConstraints: 'check constraints',
  indexes: 'indexes',
  foreignKeys: 'foreign keys',
};

const qualified = ({ schema, table }) => `${schema}.${table}`;

/** What changed since the previous version, from a training result's `changes`. */
export function renderChanges(changes, { firstVersion = false } = {}) {
  if (!changes) return h('p', { class: 'muted' }, 'No change information for this version.');
  const { tablesAdded = 0, tablesRemoved = 0, tablesAltered = 0 } = changes.counts ?? {};
  if (tablesAdded + tablesRemoved + tablesAltered === 0) {
    return h('p', { class: 'changes-none' }, 'No changes since the previous version.');
  }
  const summary = firstVersion
    ? `First version: ${count(tablesAdded, 'table')} read.`
    : `${count(tablesAdded, 'table')} added, ${tablesRemoved} removed, ${tablesAltered} altered.`;
  const parts = [h('p', { class: 'changes-summary' }, summary)];
  // On a first version every table is "added": listing them all says nothing the schema view does not.
  if (!firstVersion && changes.tablesAdded?.length) {
    parts.push(changeList('Added', changes.tablesAdded.map(qualified)));
  }
  if (changes.tablesRemoved?.length) parts.push(changeList('Removed', changes.tablesRemoved.map(qualified)));
  if (changes.tablesAltered?.length) {
    parts.push(changeList('Altered', changes.tablesAltered.map(describeAlteredTable)));
  }
  if (changes.truncated) parts.push(h('p', { class: 'muted' }, 'Only the first 100 of each kind are listed.'));
  return h('div', { class: 'changes' }, parts);
}

function changeList(title, items) {
  return h('div', { class: 'change-group' },
    h('h5', {}, title),
    h('ul', {}, items.map((item) => h('li', {}, item))));
}

function describeAlteredTable(change) {
  const details = [];
  if (change.columnsAdded?.length) details.push(`columns added: ${change.columnsAdded.join(', ')}`);
  if (change.columnsRemoved?.length) details.push(`columns removed: ${change.columnsRemoved.join(', ')}`);
  if (change.columnsAltered?.length) details.push(`columns changed: ${change.columnsAltered.join(', ')}`);
  if (change.otherChanges?.length) {
    details.push(`changed: ${change.otherChanges.map((part) => TABLE_PART_LABELS[part] ?? part).join(', ')}`);
  }
  return [h('code', {}, qualified(change)), details.length ? ` — ${details.join('; ')}` : ''];
}

/** A schema-training job's result: version, counts, names not found, changes. */
export function renderTrainingResult(result) {
  const counts = result.counts ?? {};
  const missingSchemas = result.missing?.schemas ?? [];
  const missingTables = Object.entries(result.missing?.tables ?? {})
    .flatMap(([schema, tables]) => tables.map((table) => `${schema}.${table}`));
  return h('div', { class: 'training-result' },
    h('p', {},
      `Version ${result.version}`,
      result.previousVersion ? ` (previous ${result.previousVersion})` : ' (first version)',
      `: ${count(counts.schemas ?? 0, 'schema')}, ${count(counts.tables ?? 0, 'table')}, `,
      `${count(counts.columns ?? 0, 'column')}.`),
    missingSchemas.length || missingTables.length
      ? h('p', { class: 'warning' }, 'Not found in the database: ',
        [...missingSchemas, ...missingTables].join(', '))
      : null,
    h('h4', {}, 'What changed'),
    renderChanges(result.changes, { firstVersion: !result.previousVersion }));
}

/** The whole cached schema: schemas and tables as nested disclosures, each table's details inside. */
export function renderSchemaCache(cache) {
  const enabled = Object.entries(cache.options ?? {}).filter(([, on]) => on).map(([name]) => OPTION_LABELS[name] ?? name);
  const tableCount = cache.schemas.reduce((sum, schema) => sum + schema.tables.length, 0);
  return h('div', { class: 'schema-cache' },
    h('p', {},
      `Version ${cache.version}, trained ${formatDateTime(cache.trainedAt)}: `,
      `${count(cache.schemas.length, 'schema')}, ${count(tableCount, 'table')}.`),
    h('p', { class: 'muted' }, `Read: ${enabled.join(', ') || 'names only'}.`),
    h('ul', { class: 'schema-tree' }, cache.schemas.map((schema) => h('li', {},
      h('details', { open: cache.schemas.length === 1 },
        h('summary', {}, h('strong', {}, schema.name), ` (${count(schema.tables.length, 'table')})`),
        h('ul', {}, schema.tables.map((table) => h('li', {}, renderTable(table)))))))));
}

function renderTable(table) {
  const columns = table.columns ?? [];
  return h('details', { class: 'table-detail' },
    h('summary', {}, h('code', {}, table.name), ` (${count(columns.length, 'column')})`),
    columns.length ? columnTable(columns) : null,
    keyLine('Primary key', table.primaryKey ? [table.primaryKey] : [], (pk) => pk.columns.join(', ')),
    keyLine('Unique', table.uniqueConstraints, (u) => `${u.name ?? ''} (${u.columns.join(', ')})`),
    keyLine('Checks', table.checkConstraints, (c) => c.sqltext),
    keyLine('Indexes', table.indexes,
      (i) => `${i.name} (${i.columns.join(', ')})${i.unique ? ' unique' : ''}`),
    keyLine('Foreign keys', table.foreignKeys, (fk) =>
      `(${fk.columns.join(', ')}) → ${fk.referredSchema}.${fk.referredTable} (${fk.referredColumns.join(', ')})`
      + (fk.onDelete ? ` on delete ${fk.onDelete}` : '')));
}

function columnTable(columns) {
  const typed = columns.some((column) => 'type' in column);
  return h('table', { class: 'compact' },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Column'),
      typed ? [h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Null'),
        h('th', { scope: 'col' }, 'Default')] : null)),
    h('tbody', {}, columns.map((column) => h('tr', {},
      h('td', {}, h('code', {}, column.name)),
      typed ? [h('td', {}, column.type ?? ''), h('td', {}, column.nullable ? 'yes' : 'no'),
        h('td', {}, column.default ?? '')] : null))));
}

function keyLine(label, items, describe) {
  if (!items?.length) return null;
  return h('p', { class: 'key-line' }, h('span', { class: 'muted' }, `${label}: `), items.map(describe).join('; '));
}
