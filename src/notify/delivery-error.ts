/**
 * A notification delivery error that retrying will not fix: SMTP authentication refused, a
 * recipient rejected (5xx), a webhook answering 4xx other than 408/429. The notifier gives up
 * at once instead of retrying.
 */
export class PermanentDeliveryError extends Error {
  readonly permanent = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentDeliveryError';
  }
}
