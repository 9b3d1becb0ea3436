// A real worker process with the scripted driver, for scenarios that SIGKILL workers or measure
// their memory. Options come as JSON in argv[2]. It prints "ready <workerID>" once it runs, and on
// SIGUSR2 collects garbage (when started with --expose-gc) and prints "mem <process.memoryUsage()>".
import { CodingWorker } from "@station-coding/worker";
import type { WorkerOptions } from "@station-coding/worker";
import { ScriptedDriver } from "@station-coding/testkit/worker";

const options = JSON.parse(process.argv[2] ?? "{}") as Omit<WorkerOptions, "driver">;
const worker = await CodingWorker.start({ ...options, driver: new ScriptedDriver() });
worker.handleSignals();
process.on("SIGUSR2", () => {
  (globalThis as { gc?: () => void }).gc?.();
  process.stdout.write(`mem ${JSON.stringify(process.memoryUsage())}\n`);
});
process.stdout.write(`ready ${worker.workerID}\n`);
