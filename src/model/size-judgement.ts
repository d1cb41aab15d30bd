/**
 * Outcome of a size check of a backup against the median of earlier good ones (`judgeSize`).
 * `median` and `deviation` may be null where the judgement travels as JSON (the webhook body).
 */
export interface SizeJudgement {
  /** True when the size lies outside ±tolerance of the median. */
  readonly anomalous: boolean;
  /** Median of the earlier sizes that were compared (absent when there was no judgement). */
  readonly median?: number | null;
  /** Signed relative deviation from the median: +0.8 is 80 % larger, -0.6 is 60 % smaller. */
  readonly deviation?: number | null;
  /** One human sentence: why the size is (not) anomalous, or why there was no judgement. */
  readonly reason: string;
}
