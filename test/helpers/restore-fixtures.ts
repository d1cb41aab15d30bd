import { closeSync, openSync, readSync, statSync, truncateSync, writeSync } from 'node:fs';
import { awsEnv, execFileAsync, services, sql, tableChecksums } from './services.js';

/**
 * A database worth restoring: two schemas besides public, jsonb, arrays, numeric, timestamptz,
 * bytea, ~4 MB of incompressible text (so a streamed restore is well under way before the
 * archive's tail arrives), sequences (serial, identity, a free one at a set value), a view, a
 * function, comments, and a table owned by `role` (created here; roles are cluster-wide).
 */
export function richSql(role: string): string {
  return `
CREATE ROLE ${role} NOLOGIN;
CREATE SCHEMA sales;
CREATE SCHEMA audit;
CREATE TABLE sales.customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, created timestamptz NOT NULL);
INSERT INTO sales.customers (name, email, created)
  SELECT 'customer ' || g, 'c' || g || '@example.test', timestamptz '2024-01-01 12:00:00+00' + g * interval '37 minutes' FROM generate_series(1, 300) g;
CREATE TABLE sales.orders (id bigserial PRIMARY KEY, customer_id int REFERENCES sales.customers(id), amount numeric(14,4),
  tags text[], meta jsonb, blob bytea, at timestamptz);
INSERT INTO sales.orders (customer_id, amount, tags, meta, blob, at)
  SELECT 1 + (g % 300), (g * 3.1415)::numeric(14,4), ARRAY['t' || (g % 5), 'x y', NULL], jsonb_build_object('n', g, 'nested', jsonb_build_object('a', ARRAY[g, g + 1]), 'uni', 'Grüße ✓'),
    decode(md5(g::text), 'hex'), timestamptz '2024-03-31 01:30:00+02' + g * interval '1 hour'
  FROM generate_series(1, 3000) g;
CREATE TABLE audit.log (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);
INSERT INTO audit.log (body) SELECT string_agg(md5(i || ':' || g), '' ORDER BY g) FROM generate_series(1, 60) i, generate_series(1, 2000) g GROUP BY i;
CREATE SEQUENCE sales.invoice_seq START 1000;
SELECT setval('sales.invoice_seq', 1234);
CREATE VIEW sales.big_orders AS SELECT o.id, c.name, o.amount FROM sales.orders o JOIN sales.customers c ON c.id = o.customer_id WHERE o.amount > 5000;
CREATE FUNCTION sales.order_total(c int) RETURNS numeric LANGUAGE sql STABLE AS $$ SELECT coalesce(sum(amount), 0) FROM sales.orders WHERE customer_id = c $$;
COMMENT ON TABLE sales.customers IS 'people who buy';
COMMENT ON COLUMN sales.orders.meta IS 'free-form details';
COMMENT ON FUNCTION sales.order_total(int) IS 'sum of a customer''s orders';
CREATE TABLE audit.owned (id int PRIMARY KEY, note text);
INSERT INTO audit.owned SELECT g, 'note ' || g FROM generate_series(1, 50) g;
ALTER TABLE audit.owned OWNER TO ${role};
`;
}

/** Everything a restore must bring back besides table data: sequences, owners, views, functions, comments. */
export async function schemaFacts(db: string): Promise<Record<string, string>> {
  const seqNames = (await sql(db, `SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences ORDER BY 1`))
    .split('\n')
    .filter(Boolean);
  const sequences: string[] = [];
  for (const s of seqNames) sequences.push(`${s}=${await sql(db, `SELECT last_value || ',' || is_called FROM ${s}`)}`);
  const q = (text: string) => sql(db, text);
  return {
    sequences: sequences.join(' '),
    owners: await q(
      `SELECT string_agg(format('%s.%s:%s', schemaname, tablename, tableowner), ' ' ORDER BY schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`,
    ),
    views: await q(
      `SELECT string_agg(format('%s.%s:%s', schemaname, viewname, md5(definition)), ' ' ORDER BY schemaname, viewname) FROM pg_views WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`,
    ),
    functions: await q(
      `SELECT string_agg(format('%s:%s', p.oid::regprocedure, md5(p.prosrc)), ' ' ORDER BY p.oid::regprocedure::text) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')`,
    ),
    comments: await q(
      `SELECT string_agg(description, ' | ' ORDER BY description) FROM pg_description d JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass UNION ALL SELECT string_agg(description, ' | ' ORDER BY description) FROM pg_description d JOIN pg_proc p ON p.oid = d.objoid AND d.classoid = 'pg_proc'::regclass JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'sales'`,
    ),
  };
}

/** Data (per-table md5 of ordered rows) and schema facts together: what "restored exactly" means. */
export async function snapshot(db: string): Promise<{ tables: Record<string, string>; facts: Record<string, string> }> {
  return { tables: await tableChecksums(db), facts: await schemaFacts(db) };
}

export async function databaseExists(db: string): Promise<boolean> {
  return (await sql('postgres', `SELECT count(*) FROM pg_database WHERE datname = '${db.replace(/'/g, "''")}'`)) === '1';
}

/** Flip one byte of a file at `offset` (negative: from the end). */
export function flipByte(path: string, offset: number): void {
  const size = statSync(path).size;
  const at = offset < 0 ? size + offset : offset;
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

/** Cut `bytes` off the end of a file. */
export function truncateBy(path: string, bytes: number): void {
  truncateSync(path, statSync(path).size - bytes);
}

/** Upload a file with the aws CLI (a client independent of pgbak's). */
export async function awsPut(file: string, bucket: string, key: string): Promise<void> {
  await execFileAsync('aws', ['s3', 'cp', file, `s3://${bucket}/${key}`, '--endpoint-url', services().s3.endpoint, '--only-show-errors'], {
    env: awsEnv(),
  });
}

export async function awsKeys(bucket: string, prefix = ''): Promise<string[]> {
  const { stdout } = await execFileAsync(
    'aws',
    [
      's3api',
      'list-objects-v2',
      '--bucket',
      bucket,
      '--prefix',
      prefix,
      '--endpoint-url',
      services().s3.endpoint,
      '--query',
      'Contents[].Key',
      '--output',
      'json',
    ],
    { env: awsEnv(), maxBuffer: 64 * 1024 * 1024 },
  );
  return ((JSON.parse(stdout || 'null') as string[] | null) ?? []).sort();
}
