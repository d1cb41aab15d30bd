import type { BackupResult } from '../model/backup-result.js';
import { AppError } from './app-error.js';

/** The `error` of a result, from the AppError that ended the run (its cause's code kept for retries). */
export function resultError(error: AppError): NonNullable<BackupResult['error']> {
  return {
    code: error.code,
    message: error.message,
    hint: error.hint,
    exitCode: error.exitCode,
    causeCode: error.cause instanceof AppError ? error.cause.code : undefined,
  };
}
