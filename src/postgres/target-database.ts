import type pg from 'pg';
import { databaseNameOf } from '../config/job.js';
import { AppError, DatabaseError } from '../errors/index.js';
import { connect, withDatabase } from './connection.js';
import { ident } from './sql.js';

/** What a restore target looks like before anything is changed. */
export interface TargetState {
  readonly database: string;
  readonly exists: boolean;
  /** User objects (relations, functions, types, schemas other than public, extensions). */
  readonly objects: number;
  /** The server's version number (e.g. 150018); undefined when the database does not exist. */
  readonly serverVersionNum: number | undefined;
}

const OBJECTS_SQL = `
  SELECT
    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%')
  + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
  + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      WHERE t.typtype IN ('e', 'd', 'r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema'))
  + (SELECT count(*) FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND nspname NOT LIKE 'pg\\_%')
  + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') AS n,
  current_setting('server_version_num') AS v`;

/** The name of the database a URL points at; '' when it names none (config's databaseNameOf, which throws then). */
export function databaseOf(url: string): string {
  try {
    return databaseNameOf(url);
  } catch {
    return '';
  }
}

/** Does the target exist, and is it empty? Read-only: nothing is changed. */
export async function inspectTarget(url: string): Promise<TargetState> {
  const database = databaseOf(url);
  let client: pg.Client;
  try {
    client = await connect(url);
  } catch (err) {
    if (err instanceof DatabaseError && err.code === 'db-missing')
      return { database, exists: false, objects: 0, serverVersionNum: undefined };
    throw err;
  }
  try {
    const { rows } = await client.query<{ n: string; v: string }>(OBJECTS_SQL);
    return { database, exists: true, objects: Number(rows[0]!.n), serverVersionNum: Number(rows[0]!.v) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * A connection to the target's server for CREATE/DROP DATABASE: the `postgres` database, else
 * `template1` (both exist on a default cluster).
 */
export async function connectMaintenance(url: string): Promise<pg.Client> {
  try {
    return await connect(withDatabase(url, 'postgres'));
  } catch (err) {
    if (err instanceof DatabaseError && err.code === 'db-missing') return connect(withDatabase(url, 'template1'));
    throw err;
  }
}

async function onServer<T>(url: string, what: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connectMaintenance(url);
  try {
    return await fn(client);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new DatabaseError('db-error', `${what}: ${(err as Error).message}`, { cause: err });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * CREATE DATABASE from template0: the archive brings every object, and template1 may hold
 * extras that would collide with them. Encoding and locale are the server's defaults.
 */
export async function createDatabase(url: string, database: string): Promise<void> {
  await onServer(url, `cannot create database ${database}`, async (c) => {
    await c.query(`CREATE DATABASE ${ident(database)} TEMPLATE template0`);
  });
}

/** DROP DATABASE IF EXISTS, disconnecting leftover sessions (WITH (FORCE), PostgreSQL 13+). */
export async function dropDatabase(url: string, database: string): Promise<void> {
  await onServer(url, `cannot drop database ${database}`, async (c) => {
    const { rows } = await c.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    const force = Number(rows[0]!.v) >= 130000 ? ' WITH (FORCE)' : '';
    await c.query(`DROP DATABASE IF EXISTS ${ident(database)}${force}`);
  });
}
