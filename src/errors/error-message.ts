/** The message of anything thrown, for a log field or a warning (never a stack). */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
