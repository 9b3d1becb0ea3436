// `node --import <this file> ...` logs every module the process loads (see module-log-hooks.mjs).
import { register } from "node:module";

register(new URL("./module-log-hooks.mjs", import.meta.url));
