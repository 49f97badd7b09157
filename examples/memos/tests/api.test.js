'use strict';
// HTTP-level tests of a RUNNING memos app: `node --test tests/` (Node 18+, no dependencies).
//
// Environment:
//   APP_URL               base URL of the running app (default http://127.0.0.1:8001)
//   APP_WAIT_SECONDS      how long to wait for APP_URL to answer at all (default 15)
//   APP_EXPECTED_VERSION  if set, /health must report exactly this version
//
// If APP_URL cannot be reached every test fails (never skips): a deployment whose app is
// unreachable must not pass validation. Memos a test creates are deleted afterwards (these
// tests also run against prod).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { randomUUID } = require('node:crypto');

const APP_URL = (process.env.APP_URL || 'http://127.0.0.1:8001').replace(/\/+$/, '');
const WAIT_SECONDS = Number(process.env.APP_WAIT_SECONDS || 15);
const created = [];
let unreachable = null;

async function call(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(10000) };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(APP_URL + path, init);
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, text, json };
}

async function create(fields) {
  const r = await call('POST', '/memos', fields);
  if (r.status === 201) created.push(r.json.id);
  return r;
}

function requireApp() {
  if (unreachable) {
    assert.fail(`memos app not reachable at APP_URL=${APP_URL} (waited ${WAIT_SECONDS}s): ` +
      `${unreachable}. Start the app and set APP_URL to its address.`);
  }
}

before(async () => {
  const deadline = Date.now() + WAIT_SECONDS * 1000;
  for (;;) {
    try {
      await fetch(`${APP_URL}/health`, { signal: AbortSignal.timeout(5000) });
      unreachable = null;
      return;
    } catch (err) {
      unreachable = `${err.name}: ${err.cause ? err.cause.message || err.cause.code : err.message}`;
    }
    if (Date.now() >= deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
});

after(async () => {
  for (const id of created) await call('DELETE', `/memos/${id}`).catch(() => {});
});

test('GET /health is ok and names the version', async () => {
  requireApp();
  const r = await call('GET', '/health');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.status, 'ok');
  assert.equal(r.json.database, 'ok');
  assert.equal(typeof r.json.version, 'string');
  assert.ok(r.json.version);
  if (process.env.APP_EXPECTED_VERSION) {
    assert.equal(r.json.version, process.env.APP_EXPECTED_VERSION);
  }
});

test('POST /memos, then GET it by id and in the list', async () => {
  requireApp();
  const title = `conveyor-test ${randomUUID()}`;
  const r = await create({ title, body: 'hello from the test suite' });
  assert.equal(r.status, 201, r.text);
  const memo = r.json;
  assert.ok(Number.isInteger(memo.id) && memo.id > 0);
  assert.equal(memo.title, title);
  assert.equal(memo.body, 'hello from the test suite');
  assert.equal(memo.done, false);
  assert.ok(!Number.isNaN(Date.parse(memo.created_at)));
  assert.equal(r.headers.get('location'), `/memos/${memo.id}`);

  const got = await call('GET', `/memos/${memo.id}`);
  assert.equal(got.status, 200, got.text);
  assert.deepEqual(got.json, memo);

  const listed = await call('GET', '/memos?limit=500');
  assert.equal(listed.status, 200, listed.text);
  assert.deepEqual(listed.json.memos.find((m) => m.id === memo.id), memo);
});

test('the list is newest first and honours limit and offset', async () => {
  requireApp();
  const ids = [];
  for (const n of [1, 2, 3]) {
    const r = await create({ title: `conveyor-test order ${n} ${randomUUID()}`, done: n === 2 });
    assert.equal(r.status, 201, r.text);
    ids.push(r.json.id);
  }
  const page = await call('GET', '/memos?limit=2');
  assert.equal(page.status, 200, page.text);
  assert.equal(page.json.limit, 2);
  assert.equal(page.json.offset, 0);
  assert.deepEqual(page.json.memos.map((m) => m.id), [ids[2], ids[1]]);
  assert.equal(page.json.memos[1].done, true);
  const next = await call('GET', '/memos?limit=1&offset=2');
  assert.deepEqual(next.json.memos.map((m) => m.id), [ids[0]]);
  assert.equal((await call('GET', '/memos?limit=0')).status, 400);
  assert.equal((await call('GET', '/memos?offset=x')).status, 400);
});

test('invalid bodies are refused: 400 not JSON, 422 invalid memo', async () => {
  requireApp();
  assert.equal((await call('POST', '/memos', '{not json')).status, 400);
  assert.equal((await call('POST', '/memos', '')).status, 400);
  const missing = await call('POST', '/memos', { body: 'no title' });
  assert.equal(missing.status, 422, missing.text);
  assert.deepEqual(missing.json.details, [{ field: 'title', message: 'field required' }]);
  const wrong = await call('POST', '/memos', { title: 'x', done: 'yes', extra: 1 });
  assert.equal(wrong.status, 422, wrong.text);
  assert.deepEqual(wrong.json.details.map((d) => d.field).sort(), ['done', 'extra']);
  assert.equal((await call('POST', '/memos', { title: '   ' })).status, 422);
});

test('unknown memos are 404, and DELETE removes a memo', async () => {
  requireApp();
  assert.equal((await call('GET', '/memos/999999999999')).status, 404);
  assert.equal((await call('GET', '/memos/not-a-number')).status, 404);
  const r = await call('POST', '/memos', { title: `conveyor-test delete ${randomUUID()}` });
  assert.equal(r.status, 201, r.text);
  assert.equal((await call('DELETE', `/memos/${r.json.id}`)).status, 204);
  assert.equal((await call('GET', `/memos/${r.json.id}`)).status, 404);
  assert.equal((await call('DELETE', `/memos/${r.json.id}`)).status, 404);
});
