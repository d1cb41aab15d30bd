import type pg from 'pg';

/** What a base backup needs to know of the server before it starts. */
export interface ClusterFacts {
  readonly systemIdentifier: string;
  readonly serverVersion: string;
  readonly major: number;
  readonly timeline: number;
  readonly archiveMode: string;
  readonly archiveCommand: string;
  readonly walSegmentSize: number;
  /** Tablespaces besides pg_default and pg_global (pg_basebackup -D - cannot stream them in one tar). */
  readonly extraTablespaces: readonly string[];
  /**
   * The methods a base backup can be compressed with on the server (PostgreSQL 15+): the ones the
   * server was built with, as its wal_compression setting lists them.
   */
  readonly serverCompression: readonly ('lz4' | 'zstd')[];
}

export async function clusterFacts(client: pg.Client): Promise<ClusterFacts> {
  const { rows } = await client.query<{
    sysid: string;
    version: string;
    num: string;
    tli: number;
    mode: string;
    command: string;
    segsize: string;
    walmethods: string[] | null;
  }>(`SELECT (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
            current_setting('server_version') AS version,
            current_setting('server_version_num') AS num,
            (SELECT timeline_id FROM pg_control_checkpoint()) AS tli,
            current_setting('archive_mode') AS mode,
            current_setting('archive_command') AS command,
            (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS segsize,
            (SELECT enumvals FROM pg_settings WHERE name = 'wal_compression') AS walmethods`);
  const r = rows[0]!;
  const spaces = await client.query<{ spcname: string }>(
    "SELECT spcname FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY 1",
  );
  const num = Number(r.num);
  return {
    systemIdentifier: r.sysid,
    serverVersion: r.version.split(' ')[0]!,
    major: Math.floor(num / 10000),
    timeline: Number(r.tli),
    archiveMode: r.mode,
    archiveCommand: r.command,
    walSegmentSize: Number(r.segsize),
    extraTablespaces: spaces.rows.map((x) => x.spcname),
    // wal_compression is a boolean before 15 (enumvals NULL), and BASE_BACKUP compresses from 15 on.
    serverCompression:
      Math.floor(num / 10000) >= 15 ? (r.walmethods ?? []).filter((m): m is 'lz4' | 'zstd' => m === 'lz4' || m === 'zstd') : [],
  };
}
