import type { TaskIndexRecord } from "@station-coding/protocol";
import { isFinalStatus } from "@station-coding/protocol";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** The time window of {@link throughputOf}: whole minutes, `hours` long, ending with the current minute. */
export interface StatsWindow {
  /** Start, epoch ms (a minute boundary). */
  from: number;
  /** End (exclusive), epoch ms: the end of the minute `now` is in. */
  to: number;
  hours: number;
}

/** The window of the last `hours` hours as of `now`. */
export function statsWindow(hours: number, now: number = Date.now()): StatsWindow {
  const to = Math.floor(now / MINUTE) * MINUTE + MINUTE;
  return { from: to - hours * HOUR, to, hours };
}

/** Tasks finished per minute and their cost per hour in a window, with totals. */
export interface Throughput {
  /** Tasks that reached a final status, per minute from `from` (`hours * 60` buckets). */
  tasksPerMinute: number[];
  /** Their cost (USD) per hour from `from` (`hours` buckets). */
  costPerHour: number[];
  totals: { tasks: number; completed: number; cost: number; tokens: number };
}

/**
 * Buckets the records that finished in the window by their `finishedAt`: the time a task's cost is
 * known, so a task counts once, in the minute and hour it ended (whatever its final status).
 */
export function throughputOf(records: Iterable<TaskIndexRecord>, window: StatsWindow): Throughput {
  const tasksPerMinute = new Array<number>(window.hours * 60).fill(0);
  const costPerHour = new Array<number>(window.hours).fill(0);
  const totals = { tasks: 0, completed: 0, cost: 0, tokens: 0 };
  for (const record of records) {
    const at = finishedAt(record);
    if (at === undefined || at < window.from || at >= window.to) continue;
    const offset = at - window.from;
    tasksPerMinute[Math.floor(offset / MINUTE)]! += 1;
    const cost = record.metrics?.cost ?? 0;
    costPerHour[Math.floor(offset / HOUR)]! += cost;
    totals.tasks += 1;
    if (record.status === "completed") totals.completed += 1;
    totals.cost += cost;
    totals.tokens += record.metrics?.tokens ?? 0;
  }
  return { tasksPerMinute, costPerHour, totals };
}

/** One line of the cost table: the tasks of one provider and model, and what they used. */
export interface CostLine {
  /** The model, or null for tasks whose result named none. */
  model: string | null;
  provider?: string;
  tasks: number;
  /** Input plus output tokens (records written before the split was kept count here only). */
  tokens: number;
  inputTokens: number;
  outputTokens: number;
  cost: number;
}

/** The finished tasks (since `since`, epoch ms, when given) summed by provider and model, costliest first. */
export function costsOf(records: Iterable<TaskIndexRecord>, since?: number): CostLine[] {
  const lines = new Map<string, CostLine>();
  for (const record of records) {
    const m = record.metrics;
    const at = finishedAt(record);
    if (!m || at === undefined || (since !== undefined && at < since)) continue;
    const key = JSON.stringify([m.provider ?? null, m.model ?? null]);
    let line = lines.get(key);
    if (!line) {
      line = {
        model: m.model ?? null,
        ...(m.provider !== undefined ? { provider: m.provider } : {}),
        tasks: 0,
        tokens: 0,
        inputTokens: 0,
        outputTokens: 0,
        cost: 0,
      };
      lines.set(key, line);
    }
    line.tasks += 1;
    line.tokens += m.tokens ?? (m.inputTokens ?? 0) + (m.outputTokens ?? 0);
    line.inputTokens += m.inputTokens ?? 0;
    line.outputTokens += m.outputTokens ?? 0;
    line.cost += m.cost ?? 0;
  }
  return [...lines.values()].sort((a, b) => b.cost - a.cost || (a.model ?? "").localeCompare(b.model ?? ""));
}

function finishedAt(record: TaskIndexRecord): number | undefined {
  if (!isFinalStatus(record.status) || record.finishedAt === undefined) return undefined;
  const ms = Date.parse(record.finishedAt);
  return Number.isFinite(ms) ? ms : undefined;
}
