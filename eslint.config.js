import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

/** Library code never loads the testkit statically (the CLI's demo imports it when it runs). */
const noTestkit = {
  regex: "^@station-coding/testkit(/|$)",
  allowTypeImports: true,
  message: "library code must not load the testkit; only tests, benchmarks and the demo (dynamically) use it",
};

/**
 * Forbids imports from the worker's folder `folder` into the layers above it (`above`: a regex),
 * on top of the testkit rule (a later config replaces the rule's options for its files).
 */
function workerLayer(folder, above) {
  return [
    {
      files: [`packages/worker/src/${folder}/**/*.ts`],
      rules: {
        "no-restricted-imports": [
          "error",
          {
            patterns: [
              {
                regex: above === "" ? "^\\.\\./" : `^\\.\\./${above}`,
                message: `worker/src/${folder} imports only from the layers below it (docs/layout.md)`,
              },
              noTestkit,
            ],
          },
        ],
      },
    },
  ];
}

export default tseslint.config(
  {
    // Plain JavaScript is linted only where it is source: the web console's browser modules.
    ignores: [
      "**/dist/**",
      "**/node_modules/**",
      "coverage/**",
      "**/*.js",
      "!packages/gateway/console/*.js",
      "**/*.mjs",
      "**/*.cjs",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: {
          allowDefaultProject: ["vitest.config.ts", "vitest.aliases.ts", "packages/*/scripts/*.ts"],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "separate-type-imports" }],
      "@typescript-eslint/switch-exhaustiveness-check": [
        "error",
        { considerDefaultExhaustiveForUnions: true },
      ],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/require-await": "off",
      "@typescript-eslint/restrict-template-expressions": [
        "error",
        { allowNumber: true, allowBoolean: true },
      ],
    },
  },
  {
    files: ["packages/*/src/**/*.ts"],
    ignores: ["packages/testkit/src/**"],
    rules: { "no-restricted-imports": ["error", { patterns: [noTestkit] }] },
  },
  // The worker's layers (docs/layout.md): the runtime (src/*.ts) > opencode/ > sandbox/ > workspace/
  // > git/ > shared/. A folder imports only from the layers below it.
  ...workerLayer("opencode", "[^/]+\\.js$"),
  ...workerLayer("sandbox", "([^/]+\\.js|opencode/)"),
  ...workerLayer("workspace", "([^/]+\\.js|opencode/|sandbox/)"),
  ...workerLayer("git", "([^/]+\\.js|opencode/|sandbox/|workspace/)"),
  ...workerLayer("shared", ""),
  {
    // One public entry per package: tests reach a package's internals through its `/internal`
    // entry, never through its src/ or test/ folders; shared test support is in the testkit.
    files: ["packages/*/test/**/*.ts", "test/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex:
                "(^|/)packages/[^/]+/(src|test|dist)/|^(\\.\\./)+src/|^(\\.\\./){2,}(cli|dispatcher|protocol|telemetry|testkit|worker)/",
              message:
                "import a package through its entry: @station-coding/<package>, its /internal entry, or @station-coding/testkit[/worker]",
            },
          ],
        },
      ],
    },
  },
  {
    files: ["**/test/**/*.ts", "test/**/*.ts"],
    rules: {
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-non-null-assertion": "off",
    },
  },
  {
    // The web console (docs/console.md): browser ES modules without types or a build.
    files: ["packages/gateway/console/*.js"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      sourceType: "module",
      globals: globals.browser,
    },
    rules: {
      ...tseslint.configs.disableTypeChecked.rules,
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
);
