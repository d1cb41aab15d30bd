import type pg from 'pg';
import { connect } from './connection.js';

export interface BackupProgress {
  readonly bytes: number;
  readonly elapsedMs: number;
  /** Estimated from table sizes: tables pg_dump finished, plus the share of the current one copied. */
  readonly percent: number | undefined;
  readonly table: string | undefined;
}

const COPY_PROGRESS_SQL = `
  SELECT n.nspname || '.' || c.relname AS name, p.tuples_processed::float8 AS done, greatest(c.reltuples, 1)::float8 AS estimate
  FROM pg_stat_progress_copy p
  JOIN pg_stat_activity a ON a.pid = p.pid
  JOIN pg_class c ON c.oid = p.relid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE a.application_name = 'pgbak' AND p.command = 'COPY TO' AND p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())`;

/**
 * Progress of one dump for a person watching: bytes written, and a percentage estimated from the
 * on-disk sizes of the tables. pg_dump's `--verbose` lines say which table it is copying; within
 * that table, PostgreSQL's pg_stat_progress_copy (14+) says how many rows it has sent, against
 * the table's row estimate. Polling uses its own connection, only when someone is watching,
 * and any failure there just leaves the estimate coarser.
 */
export class BackupProgressTracker {
  private readonly total: number;
  private readonly sizes: Map<string, number>;
  private doneBytes = 0;
  private current: string | undefined;
  private currentFraction = 0;
  private bytes = 0;
  private lastEmit = 0;
  private timer: NodeJS.Timeout | undefined;
  private client: pg.Client | undefined;

  constructor(
    tables: readonly { schema: string; table: string; bytes: number }[],
    private readonly started: Date,
    private readonly onProgress?: (p: BackupProgress) => void,
  ) {
    this.total = tables.reduce((s, t) => s + t.bytes, 0);
    this.sizes = new Map(tables.map((t) => [`${t.schema}.${t.table}`, t.bytes]));
  }

  /** Poll pg_stat_progress_copy once a second (only when a progress callback is set). */
  watchCopy(databaseUrl: string): void {
    if (!this.onProgress || this.total === 0) return;
    void connect(databaseUrl)
      .then((client) => {
        this.client = client;
        this.timer = setInterval(() => void this.poll(), 1000);
        this.timer.unref();
      })
      .catch(() => undefined);
  }

  private async poll(): Promise<void> {
    const client = this.client;
    if (!client || !this.current) return;
    try {
      const { rows } = await client.query<{ name: string; done: number; estimate: number }>(COPY_PROGRESS_SQL);
      const row = rows.find((r) => r.name === this.current);
      if (row) this.currentFraction = Math.min(1, row.done / row.estimate);
      this.emit(true);
    } catch {
      await this.stop(); // e.g. PostgreSQL < 14 has no pg_stat_progress_copy
    }
  }

  onTable(name: string): void {
    if (this.current) this.doneBytes += this.sizes.get(this.current) ?? 0;
    this.current = name;
    this.currentFraction = 0;
    this.emit(true);
  }

  onBytes(n: number): void {
    this.bytes = n;
    this.emit(false);
  }

  private emit(force: boolean): void {
    const now = Date.now();
    if (!this.onProgress || (!force && now - this.lastEmit < 200)) return;
    this.lastEmit = now;
    const inTable = this.current ? (this.sizes.get(this.current) ?? 0) * this.currentFraction : 0;
    this.onProgress({
      bytes: this.bytes,
      elapsedMs: now - this.started.getTime(),
      percent: this.total > 0 ? Math.min(99, ((this.doneBytes + inTable) / this.total) * 100) : undefined,
      table: this.current,
    });
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
