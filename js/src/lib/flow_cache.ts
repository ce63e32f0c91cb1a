// Kernel-computed hover flow per query ("flow" replies to "request_flow" messages), bounded
// and robust to lost replies. Each entry is one float32 [layer, head] array: an LRU keeps the
// most recent `capacity` of them (hovering along a long text asks for a new one per token),
// and a request without a reply after `retryMs` may be sent again (a reply can be lost when
// the kernel is busy or restarted, and nothing else would ask for that token again).

export const FLOW_CACHE_ENTRIES = 128;
export const FLOW_RETRY_MS = 2000;

interface Pending {
  key: string;
  sentAt: number;
}

export class FlowCache {
  private readonly values = new Map<string, Float32Array>(); // insertion order = LRU order
  private readonly pending = new Map<number, Pending>(); // request id -> what was asked
  private nextId = 0;

  constructor(
    private readonly capacity = FLOW_CACHE_ENTRIES,
    private readonly retryMs = FLOW_RETRY_MS,
  ) {}

  get size(): number {
    return this.values.size;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  get(key: string): Float32Array | undefined {
    const value = this.values.get(key);
    if (value) {
      this.values.delete(key);
      this.values.set(key, value);
    }
    return value;
  }

  /**
   * A request id to send for `key` now, or null when it is cached or already asked for less
   * than `retryMs` ago. Asking again forgets the earlier request, so a late reply is dropped.
   */
  request(key: string, now: number): number | null {
    if (this.values.has(key)) return null;
    for (const [id, p] of this.pending) {
      if (p.key !== key) continue;
      if (now - p.sentAt < this.retryMs) return null;
      this.pending.delete(id); // lost: ask again
    }
    this.nextId += 1;
    this.pending.set(this.nextId, { key, sentAt: now });
    // pending requests are bounded too: the oldest are given up
    for (const id of this.pending.keys()) {
      if (this.pending.size <= this.capacity) break;
      this.pending.delete(id);
    }
    return this.nextId;
  }

  /** Store a reply; false when its request is unknown (given up on, or asked again). */
  resolve(id: number, value: Float32Array): boolean {
    const p = this.pending.get(id);
    if (!p) return false;
    this.pending.delete(id);
    this.values.delete(p.key);
    this.values.set(p.key, value);
    for (const key of this.values.keys()) {
      if (this.values.size <= this.capacity) break;
      this.values.delete(key);
    }
    return true;
  }
}
