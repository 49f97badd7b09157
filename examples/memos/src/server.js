'use strict';
// The memos example app: a small HTTP API on PostgreSQL, Node.js + pg, no framework.
//
//   GET /health            200 {"status": "ok", ...} when SELECT 1 succeeds, else 503
//   GET /                  {"service": "memos", "version", "revision"}
//   POST /memos            JSON {"title": str, "body"?: str, "done"?: bool} -> 201
//   GET /memos             {"memos": [...], "limit", "offset"}, newest first
//   GET /memos/:id         200 or 404
//   DELETE /memos/:id      204 or 404
//
// Environment: DATABASE_URL, PORT (3000), HOST (0.0.0.0), APP_VERSION (dev),
// APP_REVISION or CONVEYOR_REVISION (optional, logged at start and reported), LOG_LEVEL (info).

const http = require('node:http');
const { Database, DatabaseNotConfigured } = require('./db');

const APP_VERSION = process.env.APP_VERSION || 'dev';
const APP_REVISION = process.env.APP_REVISION || process.env.CONVEYOR_REVISION || null;
const PORT = Number(process.env.PORT || 3000);
const HOST = process.env.HOST || '0.0.0.0';
const HEALTH_TIMEOUT_MS = 2000;
const REQUEST_MAX_BYTES = 64 * 1024;
const TITLE_MAX = 200;
const BODY_MAX = 10000;
const LIST_DEFAULT_LIMIT = 100;
const LIST_MAX_LIMIT = 500;
const BIGINT_MAX = 9223372036854775807n;

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 };
const LOG_LEVEL = LEVELS[(process.env.LOG_LEVEL || 'info').trim().toLowerCase()] || LEVELS.info;

function log(level, message) {
  if ((LEVELS[level] || LEVELS.info) >= LOG_LEVEL) {
    const stream = level === 'error' || level === 'warn' ? process.stderr : process.stdout;
    stream.write(`${level.toUpperCase()}:memos: ${message}\n`);
  }
}

// PostgreSQL error codes meaning "the schema is not what the app expects".
const SCHEMA_ERRORS = new Set(['42P01', '42703']); // undefined_table, undefined_column

class HttpError extends Error {
  constructor(status, message, extra = {}) {
    super(message);
    this.status = status;
    this.extra = extra;
  }
}

function send(res, status, body, headers = {}) {
  if (body === undefined) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(data),
    ...headers,
  });
  res.end(data);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > REQUEST_MAX_BYTES) {
      reject(new HttpError(413, `request body larger than ${REQUEST_MAX_BYTES} bytes`));
      req.resume();
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > REQUEST_MAX_BYTES) {
        reject(new HttpError(413, `request body larger than ${REQUEST_MAX_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function validateNewMemo(payload) {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    throw new HttpError(422, 'invalid memo', {
      details: [{ field: null, message: 'expected a JSON object' }],
    });
  }
  const details = [];
  for (const key of Object.keys(payload).sort()) {
    if (!['title', 'body', 'done'].includes(key)) {
      details.push({ field: key, message: 'unknown field' });
    }
  }
  let { title, body, done } = payload;
  if (title === undefined || title === null) {
    details.push({ field: 'title', message: 'field required' });
  } else if (typeof title !== 'string') {
    details.push({ field: 'title', message: 'must be a string' });
  } else {
    title = title.trim();
    if (!title) details.push({ field: 'title', message: 'must not be empty' });
    else if (title.length > TITLE_MAX) {
      details.push({ field: 'title', message: `at most ${TITLE_MAX} characters` });
    } else if (title.includes('\u0000')) {
      details.push({ field: 'title', message: 'must not contain NUL characters' });
    }
  }
  if (body === undefined || body === null) body = '';
  if (typeof body !== 'string') details.push({ field: 'body', message: 'must be a string' });
  else if (body.length > BODY_MAX) {
    details.push({ field: 'body', message: `at most ${BODY_MAX} characters` });
  } else if (body.includes('\u0000')) {
    details.push({ field: 'body', message: 'must not contain NUL characters' });
  }
  if (done === undefined || done === null) done = false;
  if (typeof done !== 'boolean') details.push({ field: 'done', message: 'must be a boolean' });
  if (details.length) throw new HttpError(422, 'invalid memo', { details });
  return { title, body, done };
}

function queryInt(url, name, fallback, lo, hi) {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return fallback;
  if (!/^-?\d+$/.test(raw)) {
    throw new HttpError(400, `query parameter '${name}' must be an integer`);
  }
  const value = BigInt(raw);
  if (value < BigInt(lo) || value > BigInt(hi)) {
    throw new HttpError(400, `query parameter '${name}' must be between ${lo} and ${hi}`);
  }
  return value.toString();
}

function parseId(raw) {
  return /^\d{1,19}$/.test(raw) && BigInt(raw) >= 1n && BigInt(raw) <= BIGINT_MAX ? raw : null;
}

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function createApp(db) {
  async function health(res) {
    try {
      await withTimeout(db.ping(), HEALTH_TIMEOUT_MS);
    } catch (err) {
      log('warn', `health check failed: ${err.name}: ${err.message}`);
      const reason = err instanceof DatabaseNotConfigured ? err.message : err.code || err.name;
      send(res, 503, {
        status: 'unavailable',
        version: APP_VERSION,
        revision: APP_REVISION,
        database: 'unreachable',
        error: reason,
      });
      return;
    }
    send(res, 200, { status: 'ok', version: APP_VERSION, revision: APP_REVISION, database: 'ok' });
  }

  async function route(req, res, url) {
    const path = url.pathname;
    const method = req.method;
    if (path === '/health' && method === 'GET') return health(res);
    if (path === '/' && method === 'GET') {
      return send(res, 200, { service: 'memos', version: APP_VERSION, revision: APP_REVISION });
    }
    if (path === '/memos') {
      if (method === 'GET') {
        const limit = queryInt(url, 'limit', LIST_DEFAULT_LIMIT, 1, LIST_MAX_LIMIT);
        const offset = queryInt(url, 'offset', 0, 0, BIGINT_MAX);
        const memos = await db.listMemos(limit, offset);
        return send(res, 200, { memos, limit: Number(limit), offset: Number(offset) });
      }
      if (method === 'POST') {
        const raw = await readBody(req);
        if (!raw.trim()) throw new HttpError(400, 'request body is empty: expected a JSON object');
        let payload;
        try {
          payload = JSON.parse(raw);
        } catch (err) {
          throw new HttpError(400, `request body is not valid JSON: ${err.message}`);
        }
        const { title, body, done } = validateNewMemo(payload);
        const memo = await db.createMemo(title, body, done);
        return send(res, 201, memo, { Location: `/memos/${memo.id}` });
      }
      throw new HttpError(405, 'method not allowed');
    }
    const m = /^\/memos\/([^/]+)$/.exec(path);
    if (m) {
      const id = parseId(m[1]);
      if (method === 'GET') {
        const memo = id === null ? null : await db.getMemo(id);
        if (!memo) throw new HttpError(404, 'memo not found');
        return send(res, 200, memo);
      }
      if (method === 'DELETE') {
        if (id === null || !(await db.deleteMemo(id))) throw new HttpError(404, 'memo not found');
        return send(res, 204);
      }
      throw new HttpError(405, 'method not allowed');
    }
    throw new HttpError(404, 'not found');
  }

  return http.createServer((req, res) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      log('info', `${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(1)}ms`);
    });
    let url;
    try {
      url = new URL(req.url, 'http://localhost');
    } catch {
      send(res, 400, { error: 'bad request target' });
      return;
    }
    route(req, res, url).catch((err) => {
      if (res.headersSent) {
        res.destroy(err);
      } else if (err instanceof HttpError) {
        send(res, err.status, { error: err.message, ...err.extra });
      } else if (err instanceof DatabaseNotConfigured) {
        send(res, 503, { error: 'database unavailable', reason: err.name });
      } else if (err && SCHEMA_ERRORS.has(err.code)) {
        log('error', `database schema does not match the app (migrations not applied?): ${err.message}`);
        send(res, 503, { error: 'database schema is not migrated', reason: err.code });
      } else if (err && (typeof err.code === 'string' && /^(08|57P)/.test(err.code) ||
                         /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|timeout/i
                           .test(`${err.code} ${err.message}`))) {
        log('warn', `database unavailable: ${err.message}`);
        send(res, 503, { error: 'database unavailable', reason: err.code || err.name });
      } else {
        log('error', `unhandled error on ${req.method} ${url.pathname}: ${err && err.stack}`);
        send(res, 500, { error: 'internal server error' });
      }
    });
  });
}

function main() {
  const db = new Database(process.env.DATABASE_URL, log);
  const server = createApp(db);
  server.keepAliveTimeout = 5000;
  server.listen(PORT, HOST, () => {
    const revision = APP_REVISION ? ` revision ${APP_REVISION}` : '';
    log('info', `memos ${APP_VERSION}${revision} started on ${HOST}:${PORT} (node ${process.version})`);
  });
  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    log('info', `memos ${APP_VERSION} stopping (${signal})`);
    // PID 1 in a container: nobody else ends the process; never hang on a stuck connection.
    setTimeout(() => process.exit(0), 3000).unref();
    server.close(() => {
      db.close().finally(() => {
        log('info', `memos ${APP_VERSION} stopped`);
        process.exit(0);
      });
    });
    server.closeIdleConnections?.();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (require.main === module) main();

module.exports = { createApp, validateNewMemo };
