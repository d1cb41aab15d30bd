import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import type { S3Settings } from '../../src/config/job.js';
import type { TestS3Server, TestServices } from '../global-setup.js';
import { psql } from './postgres-cluster.js';
import { awsEnvOf } from './s3-server.js';

export const execFileAsync = promisify(execFile);

export function services(): TestServices {
  return inject('services');
}

/** Every S3 server of the run (S3_TEST_SERVER), for `describe.each`: the primary one first. */
export function s3Servers(): TestS3Server[] {
  return services().s3Servers;
}

/** A short unique suffix for database names, bucket prefixes and temp dirs. */
export function uniqueId(): string {
  return randomBytes(4).toString('hex');
}

export function pgUrl(database: string, s = services()): string {
  return `postgresql://${s.pg.user}:${encodeURIComponent(s.pg.password)}@${s.pg.host}:${s.pg.port}/${encodeURIComponent(database)}`;
}

export const cluster = () => {
  const s = services();
  return { bindir: s.pg.bindir, url: (db: string) => pgUrl(db, s) };
};

export function sql(database: string, text: string): Promise<string> {
  return psql(cluster(), database, text);
}

/** Create a fresh database (optionally from SQL) and return its name. */
export async function createDatabase(prefix = 'db', setupSql?: string): Promise<string> {
  const name = `${prefix}_${uniqueId()}`;
  await sql('postgres', `CREATE DATABASE "${name}"`);
  if (setupSql) await sql(name, setupSql);
  return name;
}

export function tempDir(prefix = 'pgbak-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Create a bucket with the aws CLI (a real client) on `s3` (default the primary server), returning its name. */
export async function createBucket(prefix = 'test', s3 = services().s3): Promise<string> {
  const bucket = `${prefix}-${uniqueId()}`;
  await execFileAsync('aws', ['s3', 'mb', `s3://${bucket}`, '--endpoint-url', s3.endpoint], { env: awsEnv(s3) });
  return bucket;
}

/** Environment for the aws CLI against a test S3 server (default the primary one). */
export function awsEnv(s3 = services().s3): NodeJS.ProcessEnv {
  return awsEnvOf(s3);
}

/** A small sample schema with several types, for backup/restore round trips. */
export const SAMPLE_SQL = `
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, created timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id), amount numeric(12,2), tags text[], meta jsonb, blob bytea);
INSERT INTO customers (name, email) SELECT 'customer ' || g, 'c' || g || '@example.test' FROM generate_series(1, 500) g;
INSERT INTO orders (customer_id, amount, tags, meta, blob)
  SELECT 1 + (g % 500), (g * 3.17)::numeric(12,2), ARRAY['a' || (g % 7), 'b'], jsonb_build_object('n', g, 'note', repeat('x', g % 50)), decode(md5(g::text), 'hex')
  FROM generate_series(1, 5000) g;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 1000;
COMMENT ON TABLE customers IS 'people who buy';
`;

/** md5 of every table's ordered rows, for comparing a restore with its source. */
export async function tableChecksums(database: string): Promise<Record<string, string>> {
  const out = await sql(
    database,
    `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema') ORDER BY 1`,
  );
  const result: Record<string, string> = {};
  for (const table of out.split('\n').filter(Boolean)) {
    result[table] = await sql(database, `SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM ${table} t`);
  }
  return result;
}

/** S3 settings of a test server (default the primary one) for `bucket` (prefix "backups/", two parts at a time), with `overrides`. */
export function s3Settings(bucket: string, overrides: Partial<S3Settings> = {}, s = services().s3): S3Settings {
  return {
    endpoint: s.endpoint,
    accessKeyId: s.accessKey,
    secretAccessKey: s.secretKey,
    bucket,
    prefix: 'backups/',
    region: s.region,
    partSize: undefined,
    queueSize: 2,
    ...overrides,
  };
}
