/**
 * Run `fn` over `items` in order, at most `limit` at a time. At the first failure no further item
 * starts and the signal given to `fn` aborts, so the items still running can stop early; once they
 * have all settled, it rejects with that first failure. A caller's clean-up therefore never runs
 * beside an item still at work (a spool directory removed while a file is written into it, a file
 * stored after the run removed what it had stored).
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const stop = new AbortController();
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      try {
        await fn(items[next++]!, stop.signal);
      } catch (err) {
        if (failure === undefined) {
          failure = { err };
          stop.abort(err);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure.err;
}
