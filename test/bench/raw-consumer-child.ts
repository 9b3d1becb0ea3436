// The raw baseline of the worker-process case: a bare NATS client process, loaded the same way as
// the worker child (node --import tsx), that pulls from a raw work queue (nats.js consume), acks
// each message and publishes a core reply to `<replyPrefix>.<Bench-Id>`, like RawWorkQueue's
// in-process consumers. Prints "ready" once it consumes; SIGTERM closes it.
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

interface Options {
  servers: string;
  stream: string;
  consumer: string;
  replyPrefix: string;
}

const options = JSON.parse(process.argv[2] ?? "{}") as Options;
const nc = await connect({ servers: options.servers, name: "bench-raw-consumer" });
const consumer = await jetstream(nc).consumers.get(options.stream, options.consumer);
await consumer.consume({
  callback: (msg) => {
    msg.ack();
    nc.publish(`${options.replyPrefix}.${msg.headers?.get("Bench-Id") ?? ""}`, "ok");
  },
});
process.on("SIGTERM", () => {
  void nc.close().then(() => process.exit(0));
});
process.stdout.write("ready\n");
