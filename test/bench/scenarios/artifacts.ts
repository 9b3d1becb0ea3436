// 4. Artifacts: put and get of 1 MiB and 64 MiB through `dispatcher.artifacts` (stage/get) against
// raw @nats-io/obj putBlob/getBlob on a bucket configured like the namespace's object store.
import { createHash, randomBytes } from "node:crypto";
import { StorageType } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import type { ObjectStore } from "@nats-io/obj";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import { BenchEnv, taskID } from "../bench-env.js";
import type { Row, Scenario, ScenarioContext, ScenarioOutput } from "../scenario.js";
import { rateRow } from "../scenario.js";
import { now, summarize } from "../stats.js";

const MiB = 1024 * 1024;

function digest(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** MB/s (10^6 bytes) of `bytes` moved in `ms`. */
function mbps(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

interface Pass {
  put: number;
  get: number;
}

async function systemPass(dispatcher: CodingDispatcher, data: Uint8Array, check: string): Promise<Pass> {
  const t0 = now();
  const ref = await dispatcher.artifacts.stage(taskID("art"), "blob.bin", data);
  const t1 = now();
  const back = await dispatcher.artifacts.get(ref.key);
  const t2 = now();
  if (back.byteLength !== data.byteLength || digest(back) !== check) {
    throw new Error(
      `artifact ${ref.key}: read back ${back.byteLength} bytes that differ from what was staged`,
    );
  }
  return { put: mbps(data.byteLength, t1 - t0), get: mbps(data.byteLength, t2 - t1) };
}

async function rawPass(store: ObjectStore, data: Uint8Array, check: string): Promise<Pass> {
  const name = `raw/${taskID("raw-art")}/blob.bin`;
  const t0 = now();
  await store.putBlob({ name }, data);
  const t1 = now();
  const back = await store.getBlob(name);
  const t2 = now();
  if (!back || back.byteLength !== data.byteLength || digest(back) !== check) {
    throw new Error(`raw object ${name}: read back data that differ from what was put`);
  }
  return { put: mbps(data.byteLength, t1 - t0), get: mbps(data.byteLength, t2 - t1) };
}

export const artifacts: Scenario = {
  id: "artifacts",
  title: "4. Artifacts put/get",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    // Quick mode swaps 64 MiB for 8 MiB: still many chunks, a quarter of a minute less.
    const sizes = ctx.quick
      ? [
          { label: "1 MiB", bytes: MiB, rounds: 2 },
          { label: "8 MiB", bytes: 8 * MiB, rounds: 1 },
        ]
      : [
          { label: "1 MiB", bytes: MiB, rounds: 10 },
          { label: "64 MiB", bytes: 64 * MiB, rounds: 3 },
        ];
    await using env = await BenchEnv.start();
    const dispatcher = await env.dispatcher();
    const store = await new Objm(await env.connect()).create("bench-raw-artifacts", {
      storage: StorageType.File,
    });
    const warm = randomBytes(MiB);
    await systemPass(dispatcher, warm, digest(warm));
    await rawPass(store, warm, digest(warm));

    const rows: Row[] = [];
    for (const size of sizes) {
      // Random bytes: nothing on the way can compress them.
      const data = randomBytes(size.bytes);
      const check = digest(data);
      const ours: Pass[] = [];
      const base: Pass[] = [];
      for (let round = 0; round < size.rounds; round += 1) {
        const pair = [
          async () => ours.push(await systemPass(dispatcher, data, check)),
          async () => base.push(await rawPass(store, data, check)),
        ];
        for (const run of round % 2 === 0 ? pair : pair.reverse()) await run();
      }
      ctx.log(`${size.label} done`);
      for (const op of ["put", "get"] as const) {
        rows.push(
          rateRow(
            `${op} ${size.label}${op === "put" ? " (artifacts.stage)" : " (artifacts.get)"}`,
            "MB/s",
            summarize(ours.map((p) => p[op])),
            summarize(base.map((p) => p[op])),
            `raw object store ${op}Blob`,
          ),
        );
      }
    }
    return {
      rows,
      notes: [
        "MB = 10^6 bytes. Each run stages a new object (random bytes) and reads it back whole, verifying its SHA-256; both sides use one nats-server, file storage, 128 KiB chunks.",
      ],
    };
  },
};
