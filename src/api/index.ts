/**
 * pgbak as a library: the one public surface (`import { backup, restore, … } from 'pgbak'`).
 * Load jobs with `loadJobs` (an injected environment and working directory work as well as the
 * process's), then call the verbs with a job, a logger and an AbortSignal. Nothing here prints or
 * exits; failures are thrown as AppErrors (or returned in results) with their exit codes.
 */

// Configuration
export { loadJobs, selectJobs, type LoadJobsOptions, type LoadedJobs } from '../config/config-file.js';
export type { JobConfig, RetentionSettings, S3Settings } from '../config/job.js';
export type { Settings } from '../config/schema.js';

// Logging
export { LineLogger, MemoryLogger, silentLogger, type Logger, type LogFields, type LogLevel } from '../logging/logger.js';
export { Redactor, redact } from '../logging/redact.js';

// Storage
export { openStorage, type JobStorage, type OpenStorageOptions } from '../storage/job-storage.js';
export type { StorageBackend } from '../storage/storage-backend.js';
export { initBucket, type InitBucketJobOptions, type InitBucketReport, type AccessCheck, type AccessCheckName } from './init-bucket.js';

// Runs
export { runJob, type RunJobOptions } from './run-job.js';
export { finishRun, type FinishRunOptions } from './finish-run.js';
export { backup, type BackupOptions, type BackupProgress } from './backup.js';
export type { BackupResult } from '../model/backup-result.js';
export { uploadBackup, type UploadBackupOptions } from './upload-backup.js';
export { copy, type CopyItem, type CopyOptions, type CopyReport } from './copy.js';
export { upload, type UploadItem, type UploadOptions, type UploadReport } from './upload.js';
export { forgetDatabase, type ForgetOptions, type ForgetResult } from './forget.js';
export { planBackup, type BackupPlan } from './plan.js';
export { reportStart } from './report-run.js';

// Catalog: reading, checking, restoring
export { list, list as listBackups, mergeListed, sameBackup, type ListOptions, type ListedBackup, type ListedCopy } from './list.js';
export { restore, type RestoreOptions, type RestoreResult, type RestoreProgress } from './restore.js';
export { verify, combinedExitCode, type VerifyOptions, type VerifyReport, type BackupVerification } from './verify.js';
export { recordRestoreTests } from './verify-metrics.js';
export { recoveryKit, type RecoveryKitJob, type RecoveryKitResult } from './recovery-kit.js';
export {
  status,
  jobTarget,
  discoverTargets,
  type StatusReport,
  type DatabaseStatus,
  type StatusTarget,
  type BackupSummary,
} from './status.js';
export { jobIdentity, type JobIdentity } from './identity.js';

// Retention and adoption
export { prune, type PruneJobOptions, type PruneJobResult, type PrunedFile, type PruneResult, type DeletedKey } from './prune.js';
export { adopt, type AdoptOptions, type AdoptResult, type AdoptedCopy, type AdoptRefusal, type AdoptSkip } from './adopt.js';

// The dashboard's file for hosts without a daemon
export { writeHtmlReport, type HtmlReportResult } from './dashboard-report.js';

// Process lifetime
export { releaseHeldLocks } from '../catalog/run-lock.js';

// Errors and exit codes: every failure is an AppError with a stable exit code.
export * from '../errors/index.js';
