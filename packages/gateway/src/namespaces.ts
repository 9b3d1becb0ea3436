import type { CodingDispatcher } from "@station-coding/dispatcher";
import { TaskIndex, TaskIndexView } from "@station-coding/protocol";
import type { TaskIndexRecord } from "@station-coding/protocol";
import type { Logger } from "pino";
import type { Principal } from "./auth.js";
import { HttpProblem, notFound } from "./problem.js";

/** One namespace the gateway serves: single-tenant (no org) or one org, over its own connection. */
export interface GatewayNamespace {
  org: string | undefined;
  dispatcher: CodingDispatcher;
  /** The namespace's task index view (listing); without it listing answers 503. */
  index?: TaskIndexView | undefined;
  /** The task index itself, read when the view has not seen a task yet (it was just submitted). */
  records?: TaskIndex | undefined;
  /** Told about each change the view sees after its initial load (the gateway's task metrics). */
  changes?: Set<(record: TaskIndexRecord, previous: TaskIndexRecord | undefined) => void> | undefined;
}

/**
 * A namespace for a dispatcher: its task index and a view of it that follows the bucket (resolves
 * once the view holds every stored record). Stop the view with {@link closeNamespace}.
 */
export async function openNamespace(
  dispatcher: CodingDispatcher,
  logger?: Logger,
): Promise<GatewayNamespace> {
  const records = new TaskIndex(dispatcher.connection, dispatcher.names);
  const org = dispatcher.names.org;
  const changes = new Set<(record: TaskIndexRecord, previous: TaskIndexRecord | undefined) => void>();
  const index = await TaskIndexView.start(records, {
    onChange: (record, previous) => {
      // A listener that throws must not stop the view (listing and duplicate checks read it).
      for (const listener of changes) {
        try {
          listener(record, previous);
        } catch (err) {
          logger?.error(
            { org, taskID: record.taskID, err: err instanceof Error ? err.message : String(err) },
            "a task index listener failed",
          );
        }
      }
    },
    onError: (err) =>
      logger?.error(
        { org, err: err instanceof Error ? err.message : String(err) },
        "the task index view stopped following",
      ),
  });
  return { org, dispatcher, index, records, changes };
}

/** Stops a namespace's index view (the dispatcher is the caller's to close). */
export async function closeNamespace(ns: GatewayNamespace): Promise<void> {
  await ns.index?.stop();
}

/**
 * The namespaces served, and which one a request may use: an org token only its org (another
 * org reads as not found, never forbidden), an admin any (named with `?org=` or the `Station-Org`
 * header when there are several).
 */
export class Namespaces {
  private readonly byOrg = new Map<string, GatewayNamespace>();

  constructor(readonly all: readonly GatewayNamespace[]) {
    for (const ns of all) this.byOrg.set(ns.org ?? "", ns);
  }

  /** The namespace a principal's request runs in. */
  resolve(principal: Principal, requested: string | undefined): GatewayNamespace {
    const wanted = requested === "" ? undefined : requested;
    if (principal.role !== "admin" || principal.org !== undefined) {
      // An org token (or a single-tenant one) has exactly one namespace; naming another finds nothing.
      if (wanted !== undefined && wanted !== principal.org) throw notFound(`org ${wanted}`);
      const ns = this.byOrg.get(principal.org ?? "");
      if (!ns)
        throw notFound(principal.org === undefined ? "the single-tenant namespace" : `org ${principal.org}`);
      return ns;
    }
    if (wanted === undefined) {
      if (this.all.length === 1 && this.all[0]) return this.all[0];
      throw new HttpProblem(
        400,
        "org-required",
        `this gateway serves ${this.all.length} orgs (${this.orgNames()}): name one with ?org= or the Station-Org header`,
        { field: "query.org" },
      );
    }
    const ns = this.byOrg.get(wanted);
    if (!ns) throw notFound(`org ${wanted}`);
    return ns;
  }

  /**
   * The namespaces a request aggregates over (stats, costs): the one named, else every namespace
   * for an admin of all orgs, else the token's own; the same not-found rules as {@link resolve}.
   */
  visible(principal: Principal, requested: string | undefined): GatewayNamespace[] {
    const named = requested !== undefined && requested !== "";
    if (!named && principal.role === "admin" && principal.org === undefined) return [...this.all];
    return [this.resolve(principal, requested)];
  }

  private orgNames(): string {
    return this.all.map((ns) => ns.org ?? "(single-tenant)").join(", ");
  }
}
