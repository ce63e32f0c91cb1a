// Redraws coalesced into one animation frame: a burst of hovers or arriving patterns costs
// one redraw per frame, not one per event. A view names its parts; `schedule` marks them dirty
// and the next frame draws each dirty part once.

export class FrameScheduler<Part> {
  private readonly dirty = new Set<Part>();
  private frame: ReturnType<typeof setTimeout> | number | undefined;

  constructor(private readonly draw: (parts: ReadonlySet<Part>) => void) {}

  schedule(...parts: Part[]): void {
    parts.forEach((part) => this.dirty.add(part));
    if (this.frame === undefined) this.frame = nextFrame(() => this.flush());
  }

  /** Drop a pending frame (the view is going away). */
  cancel(): void {
    const frame = this.frame;
    if (frame === undefined) return;
    if (typeof cancelAnimationFrame === "function" && typeof frame === "number") cancelAnimationFrame(frame);
    else clearTimeout(frame as ReturnType<typeof setTimeout>);
  }

  private flush(): void {
    this.frame = undefined;
    const parts = new Set(this.dirty);
    this.dirty.clear();
    this.draw(parts);
  }
}

function nextFrame(cb: () => void): number | ReturnType<typeof setTimeout> {
  return typeof requestAnimationFrame === "function" ? requestAnimationFrame(cb) : setTimeout(cb, 16);
}
