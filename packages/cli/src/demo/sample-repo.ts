import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";

const exec = promisify(execFile);

/** The files of the demo's sample repository: a tiny Node package with one function. */
export const SAMPLE_FILES: Readonly<Record<string, string>> = {
  "README.md":
    '# greet\n\nA tiny package that greets people.\n\n```js\ngreet("Ada"); // "Hello, Ada!"\n```\n',
  "package.json": `${JSON.stringify({ name: "greet", version: "1.0.0", type: "module", scripts: { test: "node --test" } }, null, 2)}\n`,
  "src/greet.js": 'export function greet(name) {\n  return "Hello, " + name + "!";\n}\n',
};

/** A sample repository made for the demo. */
export interface SampleRepo {
  /** Directory of the repository. */
  path: string;
  /** Its `file://` URL, the task's `workspace.git.url`. */
  url: string;
  /** The one commit's hash. */
  commit: string;
  /** Branch the commit is on. */
  branch: string;
}

/**
 * Creates the sample repository in `dir`: the {@link SAMPLE_FILES} in one commit on `main`. Git runs
 * without the user's global and system config, so hooks, signing or templates there do not apply.
 */
export async function createSampleRepo(dir: string): Promise<SampleRepo> {
  const env = {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_AUTHOR_NAME: "station-coding demo",
    GIT_AUTHOR_EMAIL: "demo@station-coding.invalid",
    GIT_COMMITTER_NAME: "station-coding demo",
    GIT_COMMITTER_EMAIL: "demo@station-coding.invalid",
  };
  const git = async (...args: string[]): Promise<string> =>
    (await exec("git", args, { cwd: dir, env })).stdout.trim();
  for (const [file, content] of Object.entries(SAMPLE_FILES)) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), content);
  }
  try {
    await git("init", "--quiet");
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    throw new Error(
      missing
        ? "git not found on PATH: the demo needs git (apt-get install git)"
        : `git init in ${dir} failed: ${(err as Error).message}`,
      { cause: err },
    );
  }
  await git("checkout", "--quiet", "-b", "main");
  await git("add", "--all");
  await git("commit", "--quiet", "--no-gpg-sign", "-m", "Add greet()");
  return { path: dir, url: pathToFileURL(dir).href, commit: await git("rev-parse", "HEAD"), branch: "main" };
}
