#!/usr/bin/env node
// Adds an org (its dispatcher and worker NATS users) or a shared worker user to the tenancy users
// file that deploy/nats/tenancy/nats-server.conf includes. No dependencies: node 20+ only.
//
//   node deploy/scripts/add-org.mjs acme
//   node deploy/scripts/add-org.mjs --shared-worker workers-pool --orgs acme,globex
//
// See docs/multi-tenancy.md for the model and `--help` for the options.
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = dirname(fileURLToPath(import.meta.url));
const DEFAULT_FILE = `${HERE}/../nats/tenancy/auth.conf`;
const DEFAULT_TEMPLATES = `${HERE}/../nats/tenancy/templates`;
const ADMIN_USER = "station-admin";
/** Where new user blocks go: just above this line, which closes the users list. */
const INSERT_MARK = "    # add-org.mjs inserts new users above this line";

const USAGE = `Usage:
  node deploy/scripts/add-org.mjs <org> [options]
      adds org <org>: NATS users <org>-dispatcher and <org>-worker
  node deploy/scripts/add-org.mjs --shared-worker <user> --orgs <org>,<org>... [options]
      adds a worker user that serves several orgs (each must have been added)

Options:
  --file <path>        users file to create or update (default: deploy/nats/tenancy/auth.conf)
  --templates <dir>    user templates (default: deploy/nats/tenancy/templates)
  --nats-url <url>     server URL shown in the printed commands (default: NATS_URL or nats://127.0.0.1:4222)
  --force              replace users that already exist (they get new passwords)
  --json               print the new users, passwords and commands as one JSON object
  -h, --help           show this help

Environment:
  STATION_ADMIN_PASSWORD       password of ${ADMIN_USER} when the file is created (default: random)
  STATION_DISPATCHER_PASSWORD  password of the new dispatcher user (default: random)
  STATION_WORKER_PASSWORD      password of the new worker user (default: random)

Passwords are printed once; the users file holds them too, so it is written with mode 0600.
`;

/** Same rule as the protocol package's validateName: a subject token, bucket part and directory name. */
const NAME = /^[A-Za-z0-9_-]+$/;

class UsageError extends Error {}

function checkName(what, value) {
  if (typeof value !== "string" || value.length === 0 || value.length > 128) {
    throw new UsageError(`${what} ${JSON.stringify(value)}: must be 1 to 128 characters`);
  }
  if (!NAME.test(value) || value.startsWith("-")) {
    throw new UsageError(
      `${what} ${JSON.stringify(value)}: must contain only letters, digits, "_" and "-", and not start with "-"`,
    );
  }
  return value;
}

/** Reply prefix of a worker serving `orgs` (the worker package computes the same). */
function workerInboxPrefix(orgs) {
  return `_INBOX_worker+${[...new Set(orgs)].sort().join("+")}`;
}

function password(envName) {
  const given = process.env[envName];
  if (given !== undefined && given !== "") {
    if (/["\\\n\r]/.test(given))
      throw new UsageError(`${envName}: must not contain '"', '\\' or line breaks`);
    return given;
  }
  return randomBytes(24).toString("base64url");
}

/**
 * Renders a user template: `{{user}}`, `{{password}}`, `{{inbox}}` and `{{orgs}}` (the orgs joined
 * by ", ") are replaced in place; a line containing `{{org}}` is repeated once per org.
 */
function renderTemplate(template, values) {
  const out = [];
  for (const line of template.replace(/\r\n/g, "\n").split("\n")) {
    const lines = line.includes("{{org}}")
      ? values.orgs.map((org) => line.replaceAll("{{org}}", org))
      : [line];
    for (const each of lines) {
      out.push(
        each
          .replaceAll("{{user}}", values.user)
          .replaceAll("{{password}}", values.password)
          .replaceAll("{{inbox}}", values.inbox ?? "")
          .replaceAll("{{orgs}}", values.orgs.join(", ")),
      );
    }
  }
  while (out.length > 0 && out[out.length - 1] === "") out.pop();
  return out;
}

function block(kind, name, lines) {
  return [
    `    # BEGIN ${kind} ${name}`,
    ...lines.map((l) => (l === "" ? "" : `    ${l}`)),
    `    # END ${kind} ${name}`,
  ];
}

function emptyFile() {
  return [
    "# station-coding tenancy users, written by deploy/scripts/add-org.mjs from",
    "# deploy/nats/tenancy/templates. Change the templates and re-run the script (--force) rather",
    "# than editing a block by hand. Holds passwords: keep it readable by nats-server only.",
    "authorization {",
    "  users: [",
    INSERT_MARK,
    "  ]",
    "}",
  ];
}

/** The blocks in a users file, as `{kind, name, start, end}` line ranges (end inclusive). */
function blocks(lines) {
  const found = [];
  for (let i = 0; i < lines.length; i += 1) {
    const begin = /^\s*# BEGIN (\S+) (\S+)\s*$/.exec(lines[i]);
    if (!begin) continue;
    const endLine = `# END ${begin[1]} ${begin[2]}`;
    const end = lines.findIndex((l, j) => j > i && l.trim() === endLine);
    if (end < 0)
      throw new Error(`users file: "# BEGIN ${begin[1]} ${begin[2]}" has no matching "${endLine}"`);
    found.push({ kind: begin[1], name: begin[2], start: i, end });
    i = end;
  }
  return found;
}

/** Every NATS user name in the given lines (`user: "<name>"`). */
function userNames(lines) {
  return lines.flatMap((l) => {
    const m = /^\s*user:\s*"([^"]+)"/.exec(l);
    return m ? [m[1]] : [];
  });
}

/** Puts `newLines` in place of the block `kind name`, or above the insert mark. */
function upsert(lines, kind, name, newLines, force, file) {
  const existing = blocks(lines).find((b) => b.kind === kind && b.name === name);
  if (existing) {
    if (!force) {
      throw new UsageError(
        `${kind} ${name} is already in ${file}: pass --force to replace its users (they get new passwords)`,
      );
    }
    lines.splice(existing.start, existing.end - existing.start + 1, ...newLines);
    return;
  }
  const clash = userNames(newLines).find((user) => userNames(lines).includes(user));
  if (clash) throw new UsageError(`user ${clash} is already in ${file}: choose another name`);
  const mark = lines.indexOf(INSERT_MARK);
  if (mark < 0)
    throw new Error(`${file}: the line "${INSERT_MARK.trim()}" is missing; it marks where users go`);
  lines.splice(mark, 0, ...newLines);
}

function shellQuote(value) {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'"'"'`)}'`;
}

async function main(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      file: { type: "string" },
      templates: { type: "string" },
      "nats-url": { type: "string" },
      "shared-worker": { type: "string" },
      orgs: { type: "string" },
      force: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const shared = values["shared-worker"];
  if (shared === undefined && positionals.length !== 1)
    throw new UsageError("name one org (or --shared-worker)");
  if (shared !== undefined && (positionals.length > 0 || values.orgs === undefined)) {
    throw new UsageError("--shared-worker <user> takes --orgs <org>,<org>... and no org argument");
  }
  if (shared === undefined && values.orgs !== undefined)
    throw new UsageError("--orgs goes with --shared-worker");
  const file = values.file ?? DEFAULT_FILE;
  const templates = values.templates ?? DEFAULT_TEMPLATES;
  const natsUrl = values["nats-url"] ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222";
  const template = (name) => readFile(`${templates}/${name}.conf`, "utf8");

  let text;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (err.code !== "ENOENT") throw err;
  }
  const lines = text === undefined ? emptyFile() : text.replace(/\n$/, "").split("\n");
  const created = [];
  if (text === undefined) {
    const user = ADMIN_USER;
    const pw = password("STATION_ADMIN_PASSWORD");
    const admin = renderTemplate(await template("admin"), { user, password: pw, orgs: [] });
    upsert(lines, "admin", user, block("admin", user, admin), false, file);
    created.push({ role: "admin", user, password: pw });
  }

  let orgs;
  if (shared === undefined) {
    const org = checkName("org", positionals[0]);
    orgs = [org];
    const dispatcher = {
      role: "dispatcher",
      user: `${org}-dispatcher`,
      password: password("STATION_DISPATCHER_PASSWORD"),
    };
    const worker = { role: "worker", user: `${org}-worker`, password: password("STATION_WORKER_PASSWORD") };
    const rendered = [
      ...renderTemplate(await template("dispatcher"), { ...dispatcher, orgs }),
      ...renderTemplate(await template("worker"), { ...worker, orgs, inbox: workerInboxPrefix(orgs) }),
    ];
    upsert(lines, "org", org, block("org", org, rendered), values.force, file);
    created.push(dispatcher, worker);
  } else {
    const user = checkName("--shared-worker", shared);
    orgs = values.orgs.split(",").map((o) => checkName("org", o.trim()));
    const known = blocks(lines)
      .filter((b) => b.kind === "org")
      .map((b) => b.name);
    const missing = orgs.filter((o) => !known.includes(o));
    if (missing.length > 0) {
      throw new UsageError(
        `org ${missing.join(", ")} is not in ${file}: add it first (node deploy/scripts/add-org.mjs <org>)`,
      );
    }
    const worker = { role: "worker", user, password: password("STATION_WORKER_PASSWORD") };
    const rendered = renderTemplate(await template("worker"), {
      ...worker,
      orgs,
      inbox: workerInboxPrefix(orgs),
    });
    upsert(lines, "worker", user, block("worker", user, rendered), values.force, file);
    created.push(worker);
  }

  await mkdir(dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${lines.join("\n")}\n`, { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, file);

  const admin = created.find((c) => c.role === "admin");
  const byRole = (role) => created.find((c) => c.role === role);
  const orgList = orgs.join(",");
  const as = (user) => `--nats-url ${shellQuote(natsUrl)} --user ${user}`;
  const commands = {
    reload: "nats-server --signal reload   # or restart nats-server",
    ...(shared === undefined
      ? {
          init: `NATS_PASSWORD=<${ADMIN_USER} password> station-coding ${as(ADMIN_USER)} init --org ${orgList}`,
        }
      : {}),
    worker:
      `NATS_PASSWORD=<${byRole("worker").user} password> station-coding ${as(byRole("worker").user)} worker --org ${orgList}` +
      (orgs.length > 1 ? " --per-org-concurrency <n>" : ""),
    ...(byRole("dispatcher")
      ? {
          submit: `NATS_PASSWORD=<${byRole("dispatcher").user} password> station-coding ${as(byRole("dispatcher").user)} submit --org ${orgList} "<prompt>"`,
        }
      : {}),
  };

  if (values.json) {
    process.stdout.write(`${JSON.stringify({ file, orgs, users: created, commands })}\n`);
    return;
  }
  const shown = relative(process.cwd(), file) || file;
  const out = [];
  out.push(
    shared === undefined
      ? `${text === undefined ? "created" : "updated"} ${shown}: org ${orgList} (users ${byRole("dispatcher").user}, ${byRole("worker").user})`
      : `${text === undefined ? "created" : "updated"} ${shown}: shared worker ${shared} for orgs ${orgList}`,
  );
  out.push("", "Passwords, shown this once (store them in your secret manager):");
  const width = Math.max(...created.map((c) => c.user.length));
  for (const c of created) out.push(`  ${c.user.padEnd(width)}  ${c.password}`);
  out.push("", "Next:", `  1. ${commands.reload}`);
  if (commands.init) {
    out.push(
      `  2. create the org's streams, buckets and object store, as the admin${admin ? "" : ` (${ADMIN_USER})`}:`,
    );
    out.push(`       ${commands.init}`);
  }
  out.push(`  ${commands.init ? 3 : 2}. run a worker:`, `       ${commands.worker}`);
  if (commands.submit) out.push("  4. submit tasks as the org:", `       ${commands.submit}`);
  process.stdout.write(`${out.join("\n")}\n`);
}

main(process.argv.slice(2)).catch((err) => {
  const usage = err instanceof UsageError || err?.code?.startsWith?.("ERR_PARSE_ARGS");
  process.stderr.write(`add-org: ${usage ? err.message : (err?.stack ?? err)}\n`);
  if (usage) process.stderr.write("(see --help)\n");
  process.exit(usage ? 2 : 1);
});
