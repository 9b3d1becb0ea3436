// Runs a real worker with the scripted driver in its own process, for crash and signal tests.
// Options come as JSON in argv[2]; the process prints "ready <workerID>" once the worker runs.
import { CodingWorker } from "@station-coding/worker";
import type { WorkerOptions } from "@station-coding/worker";
import { ScriptedDriver } from "./scripted-driver.js";

const options = JSON.parse(process.argv[2] ?? "{}") as Omit<WorkerOptions, "driver">;
const worker = await CodingWorker.start({ ...options, driver: new ScriptedDriver() });
worker.handleSignals();
process.stdout.write(`ready ${worker.workerID}\n`);
