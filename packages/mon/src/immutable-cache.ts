/**
 * A small cache for values that never change once written (a submitted dataset's config):
 * bounded in entries (least recently used go first) and in age; concurrent misses of one key
 * share a single load; a failed load is not kept.
 */
export class ImmutableCache<V> {
  private readonly entries = new Map<string, { at: number; value: Promise<V> }>();

  constructor(private readonly max: number, private readonly maxAgeMs: number, private readonly clock: () => number = Date.now) {}

  get(key: string, load: () => Promise<{ value: V; keep: boolean }>): Promise<V> {
    const hit = this.entries.get(key);
    const t = this.clock();
    if (hit && t - hit.at < this.maxAgeMs) {
      this.entries.delete(key); // most recently used last
      this.entries.set(key, hit);
      return hit.value;
    }
    const value = load().then((r) => {
      if (!r.keep && this.entries.get(key)?.value === value) this.entries.delete(key);
      return r.value;
    });
    value.catch(() => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    });
    this.entries.delete(key);
    this.entries.set(key, { at: t, value });
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
    return value;
  }

  get size(): number {
    return this.entries.size;
  }
}
