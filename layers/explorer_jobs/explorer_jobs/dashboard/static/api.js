// The HTTP API (docs: API.md) as the dashboard calls it: bearer token, JSON in and out, errors as ApiError.

export class ApiError extends Error {
  constructor(status, detail) {
    super(describeDetail(detail) || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
  }
}

/** A person-readable message from an error body's `detail`: a string, or FastAPI's list of problems. */
export function describeDetail(detail) {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail.map((problem) => {
      const where = (problem.loc ?? []).filter((part) => part !== 'body').join('.');
      return where ? `${where}: ${problem.msg}` : problem.msg;
    }).join('; ');
  }
  return '';
}

const id = (value) => encodeURIComponent(value);

export class Api {
  /**
   * @param {object} options
   * @param {string} options.baseUrl '' for the page's own origin
   * @param {() => string | null} options.token the current bearer token
   * @param {() => void} options.onUnauthorized called on any 401 (the token expired or was revoked)
   */
  constructor({ baseUrl, token, onUnauthorized }) {
    this.baseUrl = baseUrl;
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, { body, query, headers = {} } = {}) {
    const url = new URL(`${this.baseUrl}${path}`, window.location.origin);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== null && value !== undefined && value !== '') url.searchParams.set(name, value);
    }
    const init = { method, headers: { Accept: 'application/json', ...headers }, cache: 'no-store' };
    const token = this.token();
    if (token) init.headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const payload = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      if (response.status === 401) this.onUnauthorized?.();
      throw new ApiError(response.status, payload?.detail ?? response.statusText);
    }
    return payload;
  }

  // Jobs
  listJobs({ status, jobType, limit = 50, cursor } = {}) {
    return this.request('GET', '/api/jobs', { query: { status, jobType, limit, cursor } });
  }
  getJob(jobId) { return this.request('GET', `/api/jobs/${id(jobId)}`); }
  cancelJob(jobId) { return this.request('POST', `/api/jobs/${id(jobId)}/cancel`); }
  retryJob(jobId) { return this.request('POST', `/api/jobs/${id(jobId)}/retry`); }
  queues() { return this.request('GET', '/api/queues'); }

  // Connections
  listConnections() { return this.request('GET', '/api/connections'); }
  createConnection(body) { return this.request('POST', '/api/connections', { body }); }
  deleteConnection(connectionId) { return this.request('DELETE', `/api/connections/${id(connectionId)}`); }
  testConnection(connectionId) { return this.request('POST', `/api/connections/${id(connectionId)}/test`); }
  listSchemas(connectionId) { return this.request('GET', `/api/connections/${id(connectionId)}/schemas`); }
  schemaCache(connectionId) { return this.request('GET', `/api/connections/${id(connectionId)}/schema-cache`); }

  /** Queue a training; the key makes a double click (or a retried request) queue one job, not two. */
  trainSchema(connectionId, body, idempotencyKey) {
    return this.request('POST', `/api/connections/${id(connectionId)}/train-schema`, {
      body, headers: { 'Idempotency-Key': idempotencyKey },
    });
  }
}
