// The unit every collector produces and the Remote-Write encoder consumes: one sample of one series.

export interface Label {
  readonly name: string;
  readonly value: string;
}

/** A complete label set, `__name__` included: sorted by name in byte order, names unique, values non-empty. */
export type Labels = readonly Label[];

export interface Sample {
  readonly labels: Labels;
  readonly value: number;
  /** Milliseconds since the epoch. */
  readonly timestampMs: number;
  /**
   * A Prometheus stale marker (NaN with the bits 0x7ff0000000000002). JavaScript may canonicalise NaN payloads, so
   * the marker is carried as this flag and written as bytes by the encoder; `value` is ignored when it is set.
   */
  readonly stale?: boolean;
}
