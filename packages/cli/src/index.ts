/**
 * @packageDocumentation
 * The `station-coding` command line: run workers, submit and follow tasks, inspect the system.
 */

export { StationConfig, loadConfig, namesFromConfig } from "./config.js";
export { ExitCode } from "./exit-codes.js";
export { CLI_VERSION, buildProgram, main } from "./program.js";
