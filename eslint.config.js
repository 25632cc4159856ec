// Type-aware lint for the whole repo. The rules that matter most here are the promise rules: a floating or misused
// promise in a long-running daemon (the operator, the pusher) is an unhandled rejection, which crashes Node. They stay
// errors everywhere, tests included. Every rule below that is relaxed says why.
import js from "@eslint/js";
import { defineConfig, globalIgnores } from "eslint/config";
import tseslint from "typescript-eslint";

export default defineConfig(
  globalIgnores([
    "**/node_modules/",
    "**/dist/",
    // Generated or downloaded, never edited here (the same list as .gitignore).
    "**/.cache/",
    "**/coverage/",
    "tmp/",
  ]),
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // Each file is checked with the tsconfig that owns it (pusher/, operator/, test/). scripts/ belongs to none,
        // so it gets a default project: tsconfig.base.json, the options every workspace extends.
        projectService: {
          allowDefaultProject: ["scripts/*.ts"],
          defaultProject: "tsconfig.base.json",
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: {
      // A disable comment that no longer suppresses anything is itself a finding, so stale ones do not pile up.
      reportUnusedDisableDirectives: "error",
    },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          // node:test's describe() and it() return a promise that is fulfilled (never rejected: a failure is recorded
          // by the runner, not thrown) once the test ends, and the runner itself waits for top-level and describe'd
          // tests. `test` is left out on purpose: a subtest `t.test()` is the same function under that name, and in an
          // async test it must be awaited, or it is cancelled when its parent returns.
          allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["describe", "it", "suite"] }],
        },
      ],
      "@typescript-eslint/no-misused-promises": "error",
      // Our unions (condition types, reasons, modes) are `as const` objects; a switch over one must name every
      // member, so adding a member shows each place that has to decide what it means.
      "@typescript-eslint/switch-exhaustiveness-check": [
        "error",
        // A `default` that throws "unreachable" is a deliberate guard for values that come from outside the types
        // (a CR edited by hand); it must not hide a missing case, so it does not count as covering one.
        { considerDefaultExhaustiveForUnions: false, requireDefaultForNonUnion: false },
      ],
      // `let x; const read = () => x; …; x = make(read)` is how two parts that need each other are wired (the
      // pusher's self metrics read the queue that is built with their observer): `const` would turn an early read
      // into a TDZ crash instead of the `undefined` the reader handles.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
      // `_`-prefixed names are the project's way to say "unused on purpose" (a callback's position, a destructured
      // field left out of a rest object).
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_", ignoreRestSiblings: true },
      ],
    },
  },
  {
    // Fakes in tests implement the product's async interfaces (an apiserver, a Secret store, a sink). `async` on a fake
    // method that does not await keeps what the real method promises: a throw inside it becomes a rejection, not a
    // synchronous exception. Production code keeps the rule.
    files: ["**/*.test.ts", "test/**/*.ts"],
    rules: { "@typescript-eslint/require-await": "off" },
  },
  {
    // Plain JavaScript (this file): no types to check it against.
    files: ["**/*.js", "**/*.mjs"],
    extends: [tseslint.configs.disableTypeChecked],
  },
);
