import { psql, type PgCluster } from '../test/helpers/postgres-cluster.js';

/** What was generated: the database, its size on disk and its row counts. */
export interface Dataset {
  readonly database: string;
  readonly targetBytes: number;
  readonly bytes: number;
  readonly chunks: number;
  readonly rows: Record<string, number>;
  readonly seconds: number;
}

/** Rows of each table in one chunk; the dataset is N whole chunks, N chosen from the target size. */
const CHUNK = { customers: 1000, orders: 5000, events: 10000, documents: 400 } as const;

/** A fixed vocabulary, so text compresses like prose rather than like noise or padding. */
const WORDS = `
the of and to in is was for on that with as by at from his her this which or had are an be were not
but have it they one all their been has more when there who would so its what out up into only other
new some could time these two may then first any like now my such make over our even most after also
made many before must through back years where much your way well down should because each just those
people how too little state good very world still own see men work long get here between both life being
under never day same another know while last might us great old year off come since against go came right
used take three states himself few house use during without again place american around however home
small found thought went say part once general high upon school every does got united left number course
war until always away something fact though water less public put think almost hand enough far took head
yet government system better set told nothing night end why called didn find going look asked later point
knew city next program business give group toward young days let room president side social given present
order national possible rather second face per among form important often things looked early white john
backup restore database archive stream compress encrypt upload bucket manifest checksum snapshot replica
invoice payment customer shipment warehouse ledger account balance refund discount voucher catalog
`
  .trim()
  .split(/\s+/);

const FUNCTIONS = `
CREATE OR REPLACE FUNCTION bench_u(g bigint, salt bigint) RETURNS float8 IMMUTABLE PARALLEL SAFE LANGUAGE sql
  AS $$ SELECT (hashint8extended(g, salt) & 4503599627370495)::float8 / 4503599627370496 $$;
CREATE OR REPLACE FUNCTION bench_i(g bigint, salt bigint, n int) RETURNS int IMMUTABLE PARALLEL SAFE LANGUAGE sql
  AS $$ SELECT ((hashint8extended(g, salt) & 2147483647) % n)::int $$;
CREATE OR REPLACE FUNCTION bench_words(g bigint, salt bigint, n int) RETURNS text IMMUTABLE PARALLEL SAFE LANGUAGE plpgsql AS $$
DECLARE
  words CONSTANT text[] := ARRAY[${WORDS.map((w) => `'${w}'`).join(',')}];
  out text := '';
BEGIN
  FOR k IN 1..n LOOP
    out := out || CASE WHEN k > 1 THEN ' ' ELSE '' END || words[1 + ((hashint8extended(g * 1000 + k, salt) & 2147483647) % ${WORDS.length})];
  END LOOP;
  RETURN out;
END $$;
CREATE OR REPLACE FUNCTION bench_ts(g bigint, salt bigint) RETURNS timestamptz IMMUTABLE PARALLEL SAFE LANGUAGE sql
  AS $$ SELECT to_timestamp(1420070400 + round(bench_u(g, salt) * 315360000)) $$;
`;

const SCHEMA = `
CREATE TABLE customers (
  id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE, country text NOT NULL,
  created_at timestamptz NOT NULL, balance numeric(12,2) NOT NULL, tags text[] NOT NULL, profile jsonb NOT NULL);
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id), status text NOT NULL,
  amount numeric(12,2) NOT NULL, placed_at timestamptz NOT NULL, items jsonb NOT NULL, shipping_address text NOT NULL);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_placed_idx ON orders (placed_at);
CREATE TABLE events (
  id bigint PRIMARY KEY, occurred_at timestamptz NOT NULL, kind text NOT NULL, trace_id uuid NOT NULL,
  payload jsonb NOT NULL, metrics float8[] NOT NULL);
CREATE INDEX events_occurred_idx ON events (occurred_at);
CREATE INDEX events_kind_idx ON events (kind, occurred_at);
CREATE TABLE documents (
  id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL, digest text NOT NULL, created_at timestamptz NOT NULL);
CREATE INDEX documents_created_idx ON documents (created_at);
`;

/** One chunk's rows; ids are derived from the chunk number, so every chunk is the same whatever the order. */
function chunkSql(k: number): string {
  const range = (n: number) => `generate_series(${k * n + 1}::bigint, ${(k + 1) * n}::bigint) g`;
  return `
INSERT INTO customers SELECT g,
  initcap(bench_words(g, 1, 2)), 'c' || g || '@' || (ARRAY['example.com','mail.test','corp.example','shop.test'])[1 + bench_i(g, 2, 4)],
  (ARRAY['FR','DE','US','GB','ES','IT','NL','BE','CH','SE','PL','JP','BR','CA'])[1 + bench_i(g, 3, 14)],
  bench_ts(g, 4), round((bench_u(g, 5) * 20000 - 5000)::numeric, 2),
  string_to_array(bench_words(g, 6, 1 + bench_i(g, 7, 4)), ' '),
  jsonb_build_object('age', 18 + bench_i(g, 8, 70), 'plan', (ARRAY['free','pro','team','enterprise'])[1 + bench_i(g, 9, 4)],
    'newsletter', bench_u(g, 10) < 0.3, 'prefs', jsonb_build_object('lang', (ARRAY['en','fr','de','es'])[1 + bench_i(g, 11, 4)],
    'theme', (ARRAY['light','dark'])[1 + bench_i(g, 12, 2)]), 'score', round(bench_u(g, 13)::numeric, 6))
FROM ${range(CHUNK.customers)};
INSERT INTO orders SELECT g, ${k * CHUNK.customers + 1} + bench_i(g, 20, ${CHUNK.customers}),
  (ARRAY['new','paid','shipped','delivered','cancelled','refunded'])[1 + bench_i(g, 21, 6)],
  round((bench_u(g, 22) * 900 + 1)::numeric, 2), bench_ts(g, 23),
  to_jsonb((ARRAY[${[1, 2, 3, 4, 5]
    .map(
      (i) => `jsonb_build_object('sku', 'SKU-' || lpad(bench_i(g, ${240 + i}, 50000)::text, 6, '0'),
     'qty', 1 + bench_i(g, ${250 + i}, 5), 'price', round((bench_u(g, ${260 + i}) * 200)::numeric, 2))`,
    )
    .join(',\n    ')}])[1:1 + bench_i(g, 27, 5)]),
  (10 + bench_i(g, 28, 990)) || ' ' || initcap(bench_words(g, 29, 2)) || ' street, ' || initcap(bench_words(g, 30, 1))
FROM ${range(CHUNK.orders)};
INSERT INTO events SELECT g, bench_ts(g, 40),
  (ARRAY['page_view','click','login','logout','purchase','search','error','api_call'])[1 + bench_i(g, 41, 8)],
  md5(g::text)::uuid,
  jsonb_build_object('path', '/' || replace(bench_words(g, 42, 1 + bench_i(g, 43, 3)), ' ', '/'), 'ms', bench_i(g, 44, 3000),
    'status', (ARRAY[200,200,200,201,204,301,404,500])[1 + bench_i(g, 45, 8)], 'user', bench_i(g, 46, 1000000)),
  (ARRAY[${[0, 1, 2, 3, 4, 5, 6].map((i) => `round(bench_u(g, ${470 + i}) * 1e6) / 1000`).join(', ')}])[1:2 + bench_i(g, 48, 6)]
FROM ${range(CHUNK.events)};
INSERT INTO documents SELECT g, initcap(bench_words(g, 60, 3 + bench_i(g, 61, 6))),
  bench_words(g, 62, 60 + bench_i(g, 63, 400)), md5('doc' || g), bench_ts(g, 64)
FROM ${range(CHUNK.documents)};
`;
}

async function databaseBytes(cluster: PgCluster, database: string): Promise<number> {
  return Number(await psql(cluster, database, `SELECT pg_database_size(current_database())`));
}

/**
 * A reproducible dataset of about `targetBytes` on disk: customers, orders, events and
 * documents with text, jsonb, numeric, timestamps, arrays, uuids and secondary indexes. Values
 * come from hashint8extended(row id, salt), so the same size always gives the same rows.
 */
export async function createDataset(
  cluster: PgCluster,
  targetBytes: number,
  log: (msg: string) => void,
  database = 'bench',
): Promise<Dataset> {
  const started = Date.now();
  await psql(cluster, 'postgres', `CREATE DATABASE ${database}`);
  await psql(cluster, database, FUNCTIONS + SCHEMA);
  const empty = await databaseBytes(cluster, database);
  await psql(cluster, database, chunkSql(0));
  const perChunk = (await databaseBytes(cluster, database)) - empty;
  const chunks = Math.max(1, Math.round((targetBytes - empty) / perChunk));
  log(`dataset: ${chunks} chunks of ~${(perChunk / 1e6).toFixed(1)} MB for ${(targetBytes / 1e6).toFixed(0)} MB`);
  // Two connections fill the chunks (two cores); each chunk's rows are fixed by its number.
  let next = 1;
  const worker = async () => {
    for (let k = next++; k < chunks; k = next++) {
      await psql(cluster, database, chunkSql(k));
      if (k % 10 === 0) log(`dataset: chunk ${k}/${chunks}`);
    }
  };
  await Promise.all([worker(), worker()]);
  await psql(cluster, database, `VACUUM (FREEZE, ANALYZE); CHECKPOINT;`);
  const counts = await psql(
    cluster,
    database,
    `SELECT string_agg(t || '=' || n, ',') FROM (SELECT 'customers' t, count(*) n FROM customers UNION ALL SELECT 'orders', count(*) FROM orders
      UNION ALL SELECT 'events', count(*) FROM events UNION ALL SELECT 'documents', count(*) FROM documents) x`,
  );
  const rows = Object.fromEntries(counts.split(',').map((kv) => [kv.split('=')[0]!, Number(kv.split('=')[1])]));
  return { database, targetBytes, bytes: await databaseBytes(cluster, database), chunks, rows, seconds: (Date.now() - started) / 1000 };
}
