/**
 * A tiny time-to-live cache of promises: many viewers polling the same dataset within the TTL
 * share one database query. A TTL of 0 disables it.
 */
export class TtlCache {
  private readonly entries = new Map<string, { until: number; value: Promise<unknown> }>();

  constructor(private readonly ttlMs: number, private readonly maxEntries = 1000) {}

  get<T>(key: string, load: () => Promise<T>): Promise<T> {
    if (this.ttlMs <= 0) return load();
    const t = Date.now();
    const hit = this.entries.get(key);
    if (hit && hit.until > t) return hit.value as Promise<T>;
    if (this.entries.size >= this.maxEntries) {
      for (const [k, e] of this.entries) if (e.until <= t) this.entries.delete(k);
      if (this.entries.size >= this.maxEntries) this.entries.clear();
    }
    const value = load();
    this.entries.set(key, { until: t + this.ttlMs, value });
    // a failed load is not kept
    value.catch(() => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    });
    return value;
  }

  /** Forget every entry whose key starts with `prefix` (after a control action). */
  invalidate(prefix: string): void {
    for (const k of [...this.entries.keys()]) if (k.startsWith(prefix)) this.entries.delete(k);
  }
}
