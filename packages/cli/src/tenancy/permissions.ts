import type { CodingNames } from "@station-coding/protocol";

/** The users `station-coding org add` makes in every org's account. */
export const ORG_ROLES = ["admin", "dispatcher", "worker", "viewer"] as const;
/** One of {@link ORG_ROLES}. */
export type OrgRole = (typeof ORG_ROLES)[number];

/** Subjects granted together, with the reason written next to them in the generated config. */
export interface Grant {
  why: string;
  subjects: string[];
}

/** A user's publish and subscribe allow lists; undefined: every subject of its account. */
export type RolePermissions = { publish: Grant[]; subscribe: Grant[] } | undefined;

/** What each role does, written above its user in the generated config. */
export const ROLE_PURPOSE: Record<OrgRole, string> = {
  admin:
    "the org's administrator: creates its streams, buckets and object store (station-coding init), manages git tokens (station-coding secrets); everything inside the org's account, nothing outside",
  dispatcher:
    "submits and cancels tasks, records them in the task index, follows events and results, uses sessions, agent context and artifacts, may write (never read) git tokens",
  worker:
    "pulls and acks tasks, publishes events, results (signed with this user's key) and dead letters, writes the task index, reads git tokens",
  viewer:
    "reads status, the task index, events, results, sessions, context, artifacts and dead letters; writes nothing",
};

/** Stream, bucket and key-value reads: info, stored-message and direct gets. */
function reads(stream: string): string[] {
  return [
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
  ];
}

/**
 * Consumers a client library creates to read a stream (ordered consumers following events, KV
 * watches, object reads). Whoever may create one may also point its deliver subject anywhere in the
 * account (nats-server#8274): only roles that need to read this way get it.
 */
function readConsumers(stream: string, filter = ">"): string[] {
  return [
    `$JS.API.CONSUMER.CREATE.${stream}.${filter}`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.*`,
    `$JS.API.CONSUMER.INFO.${stream}.*`,
    `$JS.API.CONSUMER.DELETE.${stream}.*`,
    `$JS.FC.${stream}.>`,
  ];
}

/** The permission lists of `role` in the account of the org that `names` belong to. */
export function rolePermissions(role: OrgRole, names: CodingNames, workerInbox: string): RolePermissions {
  const s = names.streams;
  const kv = (bucket: string) => `KV_${bucket}`;
  const obj = `OBJ_${names.objectStore}`;
  const kvData = (bucket: string) => `$KV.${bucket}.>`;
  const info = {
    why: "JetStream account check made by every JetStream client on connect",
    subjects: ["$JS.API.INFO"],
  };
  const liveSubscribe = {
    why: "live events and results of the org's tasks, and its dead letters",
    subjects: [`${names.streamPrefix}.*`, `${names.resultPrefix}.*`, `${names.dlqPrefix}.*`],
  };
  const dispatcherInbox = {
    why: "replies (JetStream API, acks, consumer deliveries)",
    subjects: [`${names.inboxPrefix}.>`],
  };
  const readStreams = {
    why: "stream info and point reads (status, results, cancels, dead letters, last events)",
    subjects: [s.tasks, s.events, s.results, s.cancels, s.dlq].flatMap(reads),
  };
  const followEvents = {
    why: "following events: ordered consumers on the events stream, filtered to the org's event subjects",
    subjects: readConsumers(s.events, `*.${names.streamPrefix}.*`),
  };
  const listDeadLetters = { why: "listing dead letters (ordered consumer)", subjects: readConsumers(s.dlq) };
  const queueStatus = {
    why: "queue status: counters of the shared task consumer",
    subjects: [`$JS.API.CONSUMER.INFO.${s.tasks}.${names.consumer}`],
  };
  const readBuckets = {
    why: "sessions, agent context, leases (task state) and worker presence: reads",
    subjects: [names.kv.sessions, names.kv.state, names.kv.leases, names.kv.workers].map(kv).flatMap(reads),
  };
  const readTaskIndex = {
    why: "the task index: reads and the watch that keeps a task listing current",
    subjects: [...reads(kv(names.kv.tasks)), ...readConsumers(kv(names.kv.tasks))],
  };
  const writeTaskIndex = {
    why: "the task index: a task's record at each transition (compare-and-set writes)",
    subjects: [kvData(names.kv.tasks)],
  };
  const readObjects = {
    why: "object store reads: staged inputs, patches, snapshots, artifacts",
    subjects: [...reads(obj), ...readConsumers(obj)],
  };
  switch (role) {
    case "admin":
      return undefined;
    case "viewer":
      return {
        publish: [
          info,
          readStreams,
          followEvents,
          listDeadLetters,
          queueStatus,
          readBuckets,
          readTaskIndex,
          readObjects,
          {
            why: "the topology check of every client reads each bucket's info (secrets: names and counts, never values)",
            subjects: [`$JS.API.STREAM.INFO.${kv(names.kv.secrets)}`],
          },
        ],
        subscribe: [dispatcherInbox, liveSubscribe],
      };
    case "dispatcher":
      return {
        publish: [
          info,
          { why: "submit and cancel", subjects: [names.taskSubject, `${names.cancelPrefix}.*`] },
          readStreams,
          followEvents,
          listDeadLetters,
          {
            why: "dead-letter replay purges the old result and dead letter",
            subjects: [`$JS.API.STREAM.PURGE.${s.results}`, `$JS.API.STREAM.PURGE.${s.dlq}`],
          },
          queueStatus,
          readBuckets,
          readTaskIndex,
          writeTaskIndex,
          {
            why: "sessions, agent context and leases (replay): writes; context listing",
            subjects: [
              ...[names.kv.sessions, names.kv.state].flatMap((b) => readConsumers(kv(b))),
              ...[names.kv.sessions, names.kv.state, names.kv.leases].map(kvData),
            ],
          },
          {
            why: "git tokens: write only (the stream info lists their names, never values)",
            subjects: [`$JS.API.STREAM.INFO.${kv(names.kv.secrets)}`, kvData(names.kv.secrets)],
          },
          {
            why: "object store: stage inputs, read and delete artifacts",
            subjects: [...readObjects.subjects, `$JS.API.STREAM.PURGE.${obj}`, `$O.${names.objectStore}.>`],
          },
        ],
        subscribe: [dispatcherInbox, liveSubscribe],
      };
    case "worker":
      return {
        publish: [
          info,
          {
            why: "events, results and dead letters",
            subjects: [`${names.streamPrefix}.*`, `${names.resultPrefix}.*`, `${names.dlqPrefix}.*`],
          },
          readStreams,
          {
            why: "the task consumer: read, tune, pull, ack / nak / in progress; drop a task that must not run again",
            subjects: [
              `$JS.API.CONSUMER.INFO.${s.tasks}.${names.consumer}`,
              `$JS.API.CONSUMER.CREATE.${s.tasks}.${names.consumer}.${names.taskSubject}`,
              `$JS.API.CONSUMER.DURABLE.CREATE.${s.tasks}.${names.consumer}`,
              `$JS.API.CONSUMER.MSG.NEXT.${s.tasks}.${names.consumer}`,
              `$JS.ACK.${s.tasks}.${names.consumer}.>`,
              `$JS.API.STREAM.MSG.DELETE.${s.tasks}`,
            ],
          },
          {
            why: "sessions, agent context, leases and presence: read and write",
            subjects: [names.kv.sessions, names.kv.state, names.kv.leases, names.kv.workers].flatMap((b) => [
              ...reads(kv(b)),
              kvData(b),
            ]),
          },
          {
            why: "session and context listing (KV watch)",
            subjects: [names.kv.sessions, names.kv.state].flatMap((b) => readConsumers(kv(b))),
          },
          {
            why: "the task index: read and write",
            subjects: [...reads(kv(names.kv.tasks)), kvData(names.kv.tasks)],
          },
          { why: "git tokens: read only", subjects: reads(kv(names.kv.secrets)) },
          {
            why: "object store: staged inputs in; patches, snapshots, session exports and artifacts out",
            subjects: [...readObjects.subjects, `$JS.API.STREAM.PURGE.${obj}`, `$O.${names.objectStore}.>`],
          },
        ],
        subscribe: [
          { why: "replies and pulled tasks: the worker inbox prefix", subjects: [`${workerInbox}.>`] },
          { why: "cancel requests", subjects: [`${names.cancelPrefix}.*`] },
          {
            why: "the server's notice that a task reached the consumer's max_deliver",
            subjects: [`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${s.tasks}.${names.consumer}`],
          },
        ],
      };
  }
}
