/**
 * Run `fn` over `items` in order, at most `limit` at a time. At the first failure no further item
 * starts and the signal given to `fn` aborts, so the items still running can stop early; once they
 * have all settled, it rejects with that first failure. A caller's clean-up therefore never runs
 * beside an item still at work (a spool directory removed while a file is written into it, a file
 * stored after the run removed what it had stored). `signal` (the caller's own, optional) is part of
 * the one given to `fn`.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, signal: AbortSignal) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const stop = new AbortController();
  const itemSignal = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      try {
        await fn(items[next++]!, itemSignal);
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
