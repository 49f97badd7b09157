'use strict';
// Database access of the memos app: a pg connection pool over DATABASE_URL.
//
// The pool connects lazily, so the app starts (and answers /health with 503) while PostgreSQL
// is still unreachable, and recovers on its own once the database answers again.

const { Pool } = require('pg');

const MEMO_COLUMNS = 'id, title, body, done, created_at';

class DatabaseNotConfigured extends Error {
  constructor() {
    super('DATABASE_URL is not set');
    this.name = 'DatabaseNotConfigured';
  }
}

function envNumber(name, fallback) {
  const raw = (process.env[name] || '').trim();
  if (raw === '') return fallback;
  const value = Number(raw);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

function memoJson(row) {
  return {
    id: Number(row.id), // bigint arrives as a string; ids stay far below 2^53
    title: row.title,
    body: row.body,
    done: row.done,
    created_at: row.created_at instanceof Date ? row.created_at.toISOString() : row.created_at,
  };
}

class Database {
  constructor(url, log) {
    this.url = (url || '').trim();
    this.log = log;
    this.pool = null;
    if (!this.url) {
      log('error', 'DATABASE_URL is not set: every database call will fail (503)');
      return;
    }
    this.pool = new Pool({
      connectionString: this.url,
      max: Math.floor(envNumber('DB_POOL_MAX_SIZE', 5)),
      connectionTimeoutMillis: envNumber('DB_CONNECT_TIMEOUT', 3) * 1000,
      idleTimeoutMillis: 30000,
      application_name: 'memos',
    });
    // An idle client whose server went away (PostgreSQL restarted): log it, never crash.
    this.pool.on('error', (err) => log('warn', `idle database connection lost: ${err.message}`));
  }

  async query(text, params) {
    if (!this.pool) throw new DatabaseNotConfigured();
    return this.pool.query(text, params);
  }

  async ping() {
    await this.query('SELECT 1');
  }

  async createMemo(title, body, done) {
    const r = await this.query(
      `INSERT INTO memos (title, body, done) VALUES ($1, $2, $3) RETURNING ${MEMO_COLUMNS}`,
      [title, body, done],
    );
    return memoJson(r.rows[0]);
  }

  async listMemos(limit, offset) {
    const r = await this.query(
      `SELECT ${MEMO_COLUMNS} FROM memos ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2`,
      [limit, offset],
    );
    return r.rows.map(memoJson);
  }

  async getMemo(id) {
    const r = await this.query(`SELECT ${MEMO_COLUMNS} FROM memos WHERE id = $1`, [id]);
    return r.rows.length ? memoJson(r.rows[0]) : null;
  }

  async deleteMemo(id) {
    const r = await this.query('DELETE FROM memos WHERE id = $1', [id]);
    return r.rowCount > 0;
  }

  async close() {
    if (this.pool) {
      const pool = this.pool;
      this.pool = null;
      await pool.end();
    }
  }
}

module.exports = { Database, DatabaseNotConfigured };
