// The memory baseline: a bare NATS client process, loaded the same way as the worker child
// (node --import tsx), that pulls from a raw work queue and keeps up to `slots` messages in flight
// (unacked, kept alive with working()) until it is killed. Messages whose payload is "ack" are
// acked at once (warm-up). Prints "ready", then "inflight <n>" whenever the count changes.
import { jetstream } from "@nats-io/jetstream";
import type { JsMsg } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

interface Options {
  servers: string;
  stream: string;
  consumer: string;
  slots: number;
}

const options = JSON.parse(process.argv[2] ?? "{}") as Options;
const nc = await connect({ servers: options.servers, name: "bench-raw-child" });
const consumer = await jetstream(nc).consumers.get(options.stream, options.consumer);
const held: JsMsg[] = [];
await consumer.consume({
  max_messages: options.slots,
  callback: (msg) => {
    if (msg.string() === "ack") {
      msg.ack();
      return;
    }
    held.push(msg);
    process.stdout.write(`inflight ${held.length}\n`);
  },
});
setInterval(() => {
  for (const msg of held) msg.working();
}, 10_000);
process.on("SIGTERM", () => {
  void nc.close().then(() => process.exit(0));
});
process.stdout.write("ready\n");
