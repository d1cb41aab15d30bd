import type { SizeJudgement } from './size-judgement.js';

/** What one backup run did, as returned by `backup()` and rendered by `--json`. */
export interface BackupResult {
  readonly status: 'ok' | 'partial' | 'failed' | 'dry-run';
  readonly job: string;
  readonly database: string;
  /** `<db>_YYYYMMDD_HHMMSS` once a name was chosen. */
  readonly name: string | undefined;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  /** Bytes of the stored artifact. */
  readonly sizeBytes: number | undefined;
  /** The stored artifact's; of a directory backup (BACKUP_JOBS ≥ 2), toc.dat's (the manifest has every file's). */
  readonly sha256: string | undefined;
  /** A directory backup (BACKUP_JOBS ≥ 2): how many files it holds. */
  readonly files?: number | undefined;
  readonly encrypted: boolean;
  /** false when this run was told to keep off the bucket (--no-upload); later steps then do too. */
  readonly upload?: boolean;
  /** Where complete copies are (local path, s3:// URL). */
  readonly locations: readonly string[];
  /** Set when status is partial or failed. */
  readonly error:
    | {
        readonly code: string;
        readonly message: string;
        readonly hint?: string | undefined;
        readonly exitCode: number;
        /** The code of the underlying cause (for a partial run: why the upload failed), which decides a retry. */
        readonly causeCode?: string | undefined;
      }
    | undefined;
  /** The server's system identifier, once the run reached the database (identity of the backups). */
  readonly systemIdentifier?: string | undefined;
  /**
   * Set by the report of a run (reportRun) when the size check found the backup's size anomalous;
   * absent otherwise (the webhook body sets it to the judgement, or null). The warnings then also carry it as text (`size anomaly: …`).
   */
  readonly sizeAnomaly?: SizeJudgement | null | undefined;
  /** Warnings that did not fail the run (size anomaly, prune problems, notification failures). */
  readonly warnings: readonly string[];
}
