/**
 * Capacity for running tasks: a global limit plus a per-org cap, granted first come first served,
 * so one org's flood cannot take every slot from another org.
 */
export class Slots {
  private used = 0;
  private readonly perOrg = new Map<string, number>();
  private readonly waiters: { org: string; resolve: () => void }[] = [];

  constructor(
    private readonly capacity: number,
    private readonly perOrgCapacity: number,
  ) {}

  /** Slots in use. */
  get inUse(): number {
    return this.used;
  }

  /** Resolves when a slot for `org` is free, and takes it. */
  acquire(org: string): Promise<void> {
    if (this.waiters.length === 0 && this.canTake(org)) {
      this.take(org);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push({ org, resolve }));
  }

  /** Gives a slot of `org` back and wakes the first waiter that can use it. */
  release(org: string): void {
    this.used -= 1;
    this.perOrg.set(org, (this.perOrg.get(org) ?? 1) - 1);
    const index = this.waiters.findIndex((w) => this.canTake(w.org));
    if (index >= 0) {
      const [waiter] = this.waiters.splice(index, 1);
      if (waiter) {
        this.take(waiter.org);
        waiter.resolve();
      }
    }
  }

  private canTake(org: string): boolean {
    return this.used < this.capacity && (this.perOrg.get(org) ?? 0) < this.perOrgCapacity;
  }

  private take(org: string): void {
    this.used += 1;
    this.perOrg.set(org, (this.perOrg.get(org) ?? 0) + 1);
  }
}
