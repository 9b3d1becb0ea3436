// Publishes a coding task with nothing but the NATS client, the way any language can:
// plain JSON on station.coding.task, events and the result on the task's own subjects.
// Usage: NATS_URL=nats://127.0.0.1:4222 node examples/publish-raw.mjs "add a README" [taskID]
import { connect, headers } from "@nats-io/transport-node";

const prompt = process.argv[2] ?? "add a README";
const taskID = process.argv[3] ?? `raw-${Date.now().toString(36)}`;
const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" });

// Subscribe before publishing, as Station's Go dispatcher does.
const events = nc.subscribe(`station.coding.stream.${taskID}`);
const result = nc.subscribe(`station.coding.result.${taskID}`, { max: 1 });
void (async () => {
  for await (const m of events) {
    const e = m.json();
    console.log(`${e.seq} ${e.type} ${e.content ?? e.tool?.name ?? ""}`.slice(0, 120));
  }
})();

// A request to the task subject is answered by the stream: the task is stored.
const h = headers();
h.set("Nats-Msg-Id", taskID);
const ack = await nc.request("station.coding.task", JSON.stringify({ taskID, prompt }), {
  headers: h,
  timeout: 5000,
});
console.log("stored:", ack.string());

for await (const m of result) {
  const r = m.json();
  console.log(`result: ${r.status} ${r.result ?? r.error ?? ""}`);
  process.exitCode = r.status === "completed" ? 0 : 1;
}
events.unsubscribe();
await nc.close();
