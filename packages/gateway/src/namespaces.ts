import type { CodingDispatcher } from "@station-coding/dispatcher";
import type { Principal } from "./auth.js";
import { HttpProblem, notFound } from "./problem.js";

/** A task index record as the gateway reads it (the protocol's `TaskIndexRecord`). */
export interface IndexedTask {
  taskID: string;
  status: "queued" | "running" | "completed" | "error" | "cancelled" | "timeout";
  op?: string | undefined;
  session?: string | undefined;
  worker?: string | undefined;
  attempts?: number | undefined;
  submittedAt?: string | undefined;
  startedAt?: string | undefined;
  finishedAt?: string | undefined;
  prompt?: string | undefined;
  metrics?: Record<string, unknown> | undefined;
  errorCode?: string | undefined;
  error?: string | undefined;
}

/** A filter and page of a task listing. */
export interface TaskQuery {
  status?: IndexedTask["status"][];
  session?: string;
  worker?: string;
  since?: string;
  limit?: number;
  cursor?: string;
}

/** What the gateway needs of a namespace's task index view (the protocol's `TaskIndexView`). */
export interface TaskIndexReader {
  get(taskID: string): IndexedTask | undefined;
  list(query: TaskQuery): { items: IndexedTask[]; next: string | null };
  countByStatus?(): Record<string, number>;
}

/** One namespace the gateway serves: single-tenant (no org) or one org, over its own connection. */
export interface GatewayNamespace {
  org: string | undefined;
  dispatcher: CodingDispatcher;
  /** The namespace's task index view; without it listing answers 503. */
  index?: TaskIndexReader | undefined;
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
      if (!ns) throw notFound(principal.org === undefined ? "the single-tenant namespace" : `org ${principal.org}`);
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

  private orgNames(): string {
    return this.all.map((ns) => ns.org ?? "(single-tenant)").join(", ");
  }
}
