// The jobs view: the user's jobs kept live from the event stream, filters, queue counts, job detail,
// cancel and retry, and the toasts that say when jobs start, finish or fail.

import { byId, count, formatDateTime, formatDuration, h, humanize, replaceChildren, timeElement } from './dom.js';
import { renderTrainingResult } from './schema-view.js';

export const STATUSES = ['queued', 'delayed', 'active', 'completed', 'failed', 'cancelled'];
const CANCELLABLE = new Set(['queued', 'delayed', 'active']);
const RETRYABLE = new Set(['failed', 'cancelled']);
const PAGE_SIZE = 50;
// Events that change more than progress: the job is read again for its attempts and times.
const REFETCH_DELAY_MS = 150;
const COUNTS_DELAY_MS = 300;

const shortId = (jobId) => jobId.slice(0, 8);

export class JobsView {
  /**
   * @param {object} deps
   * @param {import('./api.js').Api} deps.api
   * @param {import('./toasts.js').Toasts} deps.toasts
   * @param {(connectionId: string) => string | null} deps.connectionName
   */
  constructor({ api, toasts, connectionName }) {
    this.api = api;
    this.toasts = toasts;
    this.connectionName = connectionName;
    this.jobs = new Map();        // jobId -> job, as last known
    this.rows = new Map();        // jobId -> <tr>
    this.cells = new WeakMap();   // <tr> -> its cells, updated in place
    this.refetches = new Map();   // jobId -> timer
    this.countsTimer = null;
    this.nextCursor = null;
    this.detailJobId = null;
    this.knownTypes = new Set(['schema_training']);

    this.tbody = byId('jobs-body');
    this.empty = byId('jobs-empty');
    this.more = byId('jobs-more');
    this.filters = byId('job-filters');
    this.typeSelect = byId('filter-type');
    this.countsBox = byId('queue-counts');
    this.detail = byId('job-detail');

    this.filters.addEventListener('change', () => this.reload());
    this.filters.addEventListener('submit', (event) => event.preventDefault());
    this.more.addEventListener('click', () => this.loadMore());
    byId('jobs-refresh').addEventListener('click', () => this.reload());
    byId('job-detail-close').addEventListener('click', () => this.closeDetail());
    byId('job-detail-cancel').addEventListener('click', () => this.cancel(this.detailJobId));
    byId('job-detail-retry').addEventListener('click', () => this.retry(this.detailJobId));
  }

  get filter() {
    const form = new FormData(this.filters);
    return { status: form.get('status') || null, jobType: form.get('jobType') || null };
  }

  matches(job) {
    const { status, jobType } = this.filter;
    return (!status || job.status === status) && (!jobType || job.jobType === jobType);
  }

  /** Load the first page again (after sign-in, a filter change, or a reconnect that may have missed events). */
  async reload() {
    const requested = JSON.stringify(this.filter);
    this.tbody.setAttribute('aria-busy', 'true');
    try {
      const page = await this.api.listJobs({ ...this.filter, limit: PAGE_SIZE });
      if (JSON.stringify(this.filter) !== requested) return;  // the filter changed meanwhile
      this.jobs.clear();
      this.rows.clear();
      this.tbody.replaceChildren();
      this.addPage(page);
    } catch (error) {
      this.toasts.show({ title: 'Could not load jobs', body: error.message, kind: 'error' });
    } finally {
      this.tbody.removeAttribute('aria-busy');
    }
    this.refreshCounts();
  }

  async loadMore() {
    if (!this.nextCursor) return;
    try {
      this.addPage(await this.api.listJobs({ ...this.filter, limit: PAGE_SIZE, cursor: this.nextCursor }));
    } catch (error) {
      this.toasts.show({ title: 'Could not load more jobs', body: error.message, kind: 'error' });
    }
  }

  addPage(page) {
    for (const job of page.jobs) this.upsert(job);
    this.nextCursor = page.nextCursor;
    this.more.hidden = !this.nextCursor;
    this.updateEmpty();
  }

  /** A job from the stream: update its row at once, toast what matters, re-read it when its state moved. */
  handleEvent(event) {
    this.toastFor(event);
    const known = this.jobs.get(event.jobId);
    if (known) {
      const patch = { status: event.status, progress: event.progress, message: event.message ?? known.message };
      if ('result' in event) patch.result = event.result;
      if ('error' in event) patch.error = event.error;
      this.upsert({ ...known, ...patch });
    }
    if (event.type !== 'job_progress' || !known) this.scheduleRefetch(event.jobId);
    if (event.type !== 'job_progress') this.scheduleCounts();
  }

  toastFor(event) {
    const what = humanize(event.jobType);
    const where = this.describeTarget(this.jobs.get(event.jobId));
    switch (event.type) {
      case 'job_started':
        this.toasts.show({ title: `${what} started`, body: where });
        break;
      case 'job_completed':
        this.toasts.show({ title: `${what} completed`, body: [where, describeOutcome(event)].filter(Boolean).join(': '),
          kind: 'success' });
        break;
      case 'job_failed':
        this.toasts.show({ title: `${what} failed`, body: event.error ?? event.message ?? '', kind: 'error' });
        break;
      case 'job_retrying':
        this.toasts.show({ title: `${what} will be retried`, body: event.error ?? event.message ?? '' });
        break;
      case 'job_cancelled':
        this.toasts.show({ title: `${what} cancelled`, body: where });
        break;
      default:
        break;
    }
  }

  describeTarget(job) {
    const connectionId = job?.data?.connectionId;
    return connectionId ? this.connectionName(connectionId) ?? '' : '';
  }

  scheduleRefetch(jobId) {
    clearTimeout(this.refetches.get(jobId));
    this.refetches.set(jobId, setTimeout(async () => {
      this.refetches.delete(jobId);
      try {
        this.upsert(await this.api.getJob(jobId));
      } catch (error) {
        if (error.status === 404) this.remove(jobId);  // expired, or its connection was deleted
      }
    }, REFETCH_DELAY_MS));
  }

  scheduleCounts() {
    clearTimeout(this.countsTimer);
    this.countsTimer = setTimeout(() => this.refreshCounts(), COUNTS_DELAY_MS);
  }

  async refreshCounts() {
    try {
      const { queues } = await this.api.queues();
      this.renderCounts(queues);
    } catch (error) {
      replaceChildren(this.countsBox, h('p', { class: 'error' }, `Queue counts unavailable: ${error.message}`));
    }
  }

  renderCounts(queues) {
    for (const queue of queues) this.addKnownType(queue.jobType);
    if (!queues.length) {
      replaceChildren(this.countsBox, h('p', { class: 'muted' }, 'No jobs in the queues.'));
      return;
    }
    replaceChildren(this.countsBox, h('table', { class: 'compact counts' },
      h('caption', { class: 'visually-hidden' }, 'Jobs per type and status'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Job type'),
        STATUSES.map((status) => h('th', { scope: 'col' }, humanize(status))))),
      h('tbody', {}, queues.map((queue) => h('tr', { 'data-job-type': queue.jobType },
        h('th', { scope: 'row' }, humanize(queue.jobType)),
        STATUSES.map((status) => h('td', { 'data-status': status, class: queue.counts[status] ? '' : 'zero' },
          String(queue.counts[status] ?? 0))))))));
  }

  addKnownType(jobType) {
    if (this.knownTypes.has(jobType)) return;
    this.knownTypes.add(jobType);
    this.typeSelect.append(h('option', { value: jobType }, humanize(jobType)));
  }

  // --- rows ---

  upsert(job) {
    this.addKnownType(job.jobType);
    if (!this.matches(job)) {
      this.remove(job.jobId);
      return;
    }
    this.jobs.set(job.jobId, job);
    let row = this.rows.get(job.jobId);
    if (!row) {
      row = this.createRow(job);
      this.rows.set(job.jobId, row);
      this.insertInOrder(row, job);
    }
    this.updateRow(row, job);
    if (this.detailJobId === job.jobId) this.renderDetail(job);
    this.updateEmpty();
  }

  remove(jobId) {
    this.jobs.delete(jobId);
    this.rows.get(jobId)?.remove();
    this.rows.delete(jobId);
    this.updateEmpty();
  }

  updateEmpty() {
    this.empty.hidden = this.rows.size > 0;
  }

  // Newest first, as the API lists them; a job created while the page is open goes on top.
  insertInOrder(row, job) {
    const created = job.createdAt ?? '';
    for (const other of this.tbody.children) {
      const otherJob = this.jobs.get(other.dataset.jobId);
      if (otherJob && (otherJob.createdAt ?? '') < created) {
        this.tbody.insertBefore(row, other);
        return;
      }
    }
    this.tbody.append(row);
  }

  // Cells are created once and updated in place, so a button that has focus keeps it while progress moves.
  createRow(job) {
    const cells = {
      title: h('button', { type: 'button', class: 'link job-title', 'aria-controls': 'job-detail',
        onclick: () => this.openDetail(job.jobId) }),
      target: h('div', { class: 'muted small' }),
      status: h('span', { class: 'badge' }),
      progress: h('progress', { max: 100, 'aria-label': 'Progress' }),
      percent: h('span', { class: 'percent' }),
      message: h('td', { class: 'message' }),
      attempts: h('td', { class: 'num' }),
      created: h('td', {}),
      started: h('td', {}),
      finished: h('td', {}),
      cancel: h('button', { type: 'button', class: 'small', onclick: () => this.cancel(job.jobId) }, 'Cancel'),
      retry: h('button', { type: 'button', class: 'small', onclick: () => this.retry(job.jobId) }, 'Retry'),
    };
    const row = h('tr', { 'data-job-id': job.jobId },
      h('th', { scope: 'row' }, cells.title, cells.target, h('code', { class: 'muted small' }, shortId(job.jobId))),
      h('td', {}, cells.status),
      h('td', { class: 'progress-cell' }, cells.progress, cells.percent),
      cells.message, cells.attempts, cells.created, cells.started, cells.finished,
      h('td', { class: 'actions' }, cells.cancel, cells.retry));
    this.cells.set(row, cells);
    return row;
  }

  updateRow(row, job) {
    const cells = this.cells.get(row);
    row.dataset.status = job.status;
    cells.title.textContent = humanize(job.jobType);
    cells.target.textContent = this.describeTarget(job);
    cells.status.textContent = job.status;
    cells.status.className = `badge status-${job.status}`;
    cells.progress.value = job.progress;
    cells.progress.setAttribute('aria-valuetext', `${job.progress}%`);
    cells.percent.textContent = `${job.progress}%`;
    cells.message.textContent = job.status === 'failed' && job.error ? job.error : job.message ?? '';
    cells.attempts.textContent = `${job.attempts} / ${job.maxAttempts}`;
    replaceChildren(cells.created, timeElement(job.createdAt));
    replaceChildren(cells.started, timeElement(job.startedAt));
    replaceChildren(cells.finished, timeElement(job.finishedAt));
    cells.cancel.hidden = !CANCELLABLE.has(job.status);
    cells.retry.hidden = !RETRYABLE.has(job.status);
    const label = `${humanize(job.jobType)} ${shortId(job.jobId)}`;
    cells.cancel.setAttribute('aria-label', `Cancel ${label}`);
    cells.retry.setAttribute('aria-label', `Retry ${label}`);
  }

  // --- actions ---

  async cancel(jobId) {
    if (!jobId) return;
    try {
      this.upsert(await this.api.cancelJob(jobId));
    } catch (error) {
      this.toasts.show({ title: 'Could not cancel the job', body: error.message, kind: 'error' });
    }
  }

  async retry(jobId) {
    if (!jobId) return;
    try {
      this.upsert(await this.api.retryJob(jobId));
    } catch (error) {
      this.toasts.show({ title: 'Could not retry the job', body: error.message, kind: 'error' });
    }
  }

  /** Show a job that was just queued (from the re-train dialog) even before its first event arrives. */
  async showQueued(jobId) {
    try {
      this.upsert(await this.api.getJob(jobId));
    } catch {
      /* its job_queued event will bring it */
    }
    this.rows.get(jobId)?.scrollIntoView({ block: 'nearest' });
  }

  // --- detail ---

  openDetail(jobId) {
    this.detailJobId = jobId;
    const job = this.jobs.get(jobId);
    if (job) this.renderDetail(job);
    this.detail.hidden = false;
    byId('job-detail-title').focus();
    this.scheduleRefetch(jobId);  // the list may be a little behind; show the freshest
  }

  closeDetail() {
    const jobId = this.detailJobId;
    this.detailJobId = null;
    this.detail.hidden = true;
    const row = this.rows.get(jobId);
    if (row) this.cells.get(row).title.focus();
  }

  renderDetail(job) {
    byId('job-detail-title').textContent = `${humanize(job.jobType)} ${shortId(job.jobId)}`;
    byId('job-detail-cancel').hidden = !CANCELLABLE.has(job.status);
    byId('job-detail-retry').hidden = !RETRYABLE.has(job.status);
    const duration = job.startedAt && job.finishedAt
      ? formatDuration(new Date(job.finishedAt) - new Date(job.startedAt)) : null;
    const fields = [
      ['Status', h('span', { class: `badge status-${job.status}` }, job.status)],
      ['Progress', `${job.progress}%`],
      ['Message', job.message ?? '—'],
      ['Connection', this.describeTarget(job) || job.data?.connectionId || '—'],
      ['Priority', String(job.priority)],
      ['Attempts', `${job.attempts} of at most ${job.maxAttempts}`],
      ['Created', formatDateTime(job.createdAt)],
      ['Started', formatDateTime(job.startedAt)],
      ['Finished', formatDateTime(job.finishedAt)],
      ['Took', duration ?? '—'],
      ['Job id', h('code', {}, job.jobId)],
    ];
    replaceChildren(byId('job-detail-body'),
      h('dl', { class: 'fields' }, fields.map(([name, value]) => [h('dt', {}, name), h('dd', {}, value)])),
      job.jobType === 'schema_training' ? describeTrainingRequest(job.data) : null,
      job.error ? [h('h4', {}, 'Error'), h('pre', { class: 'error-text' }, job.error)] : null,
      job.result ? [h('h4', {}, 'Result'), renderResult(job)] : null,
      h('details', { class: 'raw' }, h('summary', {}, 'Raw job (JSON)'),
        h('pre', {}, JSON.stringify(job, null, 2))));
  }
}

// A line for the "completed" toast: a training's size and version, else the job's last message.
function describeOutcome(event) {
  const counts = event.result?.counts;
  if (event.jobType === 'schema_training' && counts) {
    return `${count(counts.tables ?? 0, 'table')} read, version ${event.result.version}`;
  }
  return event.message ?? '';
}

function renderResult(job) {
  if (job.jobType === 'schema_training' && job.result?.counts) return renderTrainingResult(job.result);
  return h('pre', {}, JSON.stringify(job.result, null, 2));
}

function describeTrainingRequest(data = {}) {
  const schemas = data.schemas ? data.schemas.join(', ') : 'all schemas';
  const partial = Object.entries(data.tables ?? {})
    .map(([schema, tables]) => `${schema}: ${count(tables.length, 'table')}`);
  const off = Object.entries(data.options ?? {}).filter(([, on]) => !on).map(([name]) => name);
  return h('p', { class: 'muted' }, `Requested: ${schemas}`,
    partial.length ? ` (only some tables in ${partial.join('; ')})` : '',
    off.length ? `; left out: ${off.join(', ')}` : '', '.');
}
