// A dispatcher in its own process, for the scenario that SIGKILLs a dispatcher mid-task. It submits
// the task given as JSON in argv[3] to the server at argv[2] and prints "event <json>" per event.
import { CodingDispatcher } from "@station-coding/dispatcher";
import type { TaskInput } from "@station-coding/protocol";
import { pino } from "pino";

const [servers = "", taskJson = "{}"] = process.argv.slice(2);
const dispatcher = await CodingDispatcher.connect({
  servers,
  name: "reliability-dispatcher-child",
  logger: pino({ level: "warn" }, process.stderr),
});
const handle = await dispatcher.submit(JSON.parse(taskJson) as TaskInput);
process.stdout.write(`submitted ${handle.taskID}\n`);
for await (const event of handle.events()) process.stdout.write(`event ${JSON.stringify(event)}\n`);
process.stdout.write(`result ${JSON.stringify(await handle.result())}\n`);
await dispatcher.close();
