import { AppError, InterruptedError } from './app-error.js';

/** Any thrown value as an AppError: an AbortError carries its reason; anything unexpected is an internal error. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof Error && err.name === 'AbortError') {
    const reason = (err as Error & { cause?: unknown }).cause;
    return reason instanceof AppError ? reason : new InterruptedError('interrupted', { cause: err });
  }
  return new AppError('internal', `internal error: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
    hint: 'this is a bug in pgbak; the log has the details (BACKUP_LOG_LEVEL=debug shows the stack)',
  });
}
