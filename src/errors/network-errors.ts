/**
 * Socket-level error codes (Node's errno names and undici's), with what each means for people and
 * whether trying again later may succeed. One table for S3, webhooks and the daemon's retries.
 * ENOTFOUND is not transient: a host name that does not resolve is a configuration mistake far more
 * often than a passing DNS outage (EAI_AGAIN is the passing one).
 */
export const NETWORK_ERRORS = {
  ECONNREFUSED: { text: 'connection refused', transient: true },
  ENOTFOUND: { text: 'host not found', transient: false },
  EAI_AGAIN: { text: 'DNS lookup failed', transient: true },
  ECONNRESET: { text: 'connection reset', transient: true },
  ETIMEDOUT: { text: 'connection timed out', transient: true },
  EHOSTUNREACH: { text: 'host unreachable', transient: true },
  ENETUNREACH: { text: 'network unreachable', transient: true },
  EPIPE: { text: 'connection closed while writing', transient: true },
  ECONNABORTED: { text: 'connection aborted', transient: true },
  UND_ERR_CONNECT_TIMEOUT: { text: 'connection timed out', transient: true },
  UND_ERR_SOCKET: { text: 'socket error', transient: true },
} as const satisfies Record<string, { text: string; transient: boolean }>;

export type NetworkErrorCode = keyof typeof NETWORK_ERRORS;

/** True for a socket-level error code of the table. */
export function isNetworkErrorCode(code: unknown): code is NetworkErrorCode {
  return typeof code === 'string' && Object.hasOwn(NETWORK_ERRORS, code);
}
