/**
 * Exit codes are part of pgbak's interface: scripts and monitors depend on them.
 * Add new ones at the end; never renumber.
 */
export const ExitCode = {
  ok: 0,
  failure: 1, // internal error or an unclassified failure
  usage: 2, // bad flags, bad configuration
  partial: 3, // the backup is safe locally but a copy (upload) failed
  pgDumpMissing: 4, // no suitable pg_dump / pg_restore binary
  database: 5, // connection refused, authentication failed, database missing
  permission: 6, // permission denied on BACKUP_DIR, LOG_FILE or a temp file, or the disk is full
  storage: 7, // S3 endpoint, bucket or credentials
  encryption: 8, // GPG key / age identity missing, or gpg / age failed
  integrity: 9, // size or sha256 differs from the manifest, archive unreadable
  notFound: 10, // no backup by that name
  locked: 11, // another run of the same database is in progress
  stale: 12, // status: newest good backup older than the RPO, or the last run failed
  dumpFailed: 13, // pg_dump / pg_dumpall / pg_restore exited non-zero or was killed
  verifyFailed: 14, // a restore test ran but its checks did not hold
  interrupted: 130, // SIGINT / SIGTERM
  walFetchFailed: 126, // wal-fetch: the archive could not be read; PostgreSQL stops recovery (>125) instead of ending it
} as const;

export type ExitCodeName = keyof typeof ExitCode;

/** Text for `pgbak --help`. */
export const exitCodeHelp: ReadonlyArray<readonly [number, string]> = [
  [ExitCode.ok, 'success'],
  [ExitCode.failure, 'internal error or unclassified failure'],
  [ExitCode.usage, 'usage or configuration error (every problem is listed)'],
  [ExitCode.partial, 'backup kept locally, but the upload (or another copy) failed'],
  [ExitCode.pgDumpMissing, 'pg_dump / pg_restore not found, or older than the server'],
  [ExitCode.database, 'database unreachable: connection refused, authentication failed, database missing'],
  [ExitCode.permission, 'permission denied on BACKUP_DIR, LOG_FILE or a working file, or the disk is full (no space left, quota exceeded)'],
  [ExitCode.storage, 'S3 storage failed: endpoint, bucket or credentials'],
  [ExitCode.encryption, 'GPG key or age identity not found, or gpg / age failed'],
  [ExitCode.integrity, 'backup corrupt: size or sha256 differs from its manifest'],
  [ExitCode.notFound, 'no backup with that name'],
  [ExitCode.locked, 'another run for the same database is in progress'],
  [ExitCode.stale, 'status: no good backup within BACKUP_RPO, or the last run failed'],
  [ExitCode.dumpFailed, 'pg_dump, pg_dumpall or pg_restore failed or was killed'],
  [ExitCode.verifyFailed, 'restore test ran but its checks failed'],
  [ExitCode.interrupted, 'interrupted by a signal'],
  [
    ExitCode.walFetchFailed,
    'wal-fetch: the WAL archive could not be read (network, credentials, gpg, a gap, a corrupt file): recovery stops',
  ],
];
