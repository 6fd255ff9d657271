// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import globals from "globals";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "segments/**", "sample/segments/**", "bench/results/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { files: ["**/*.mjs", "**/*.js"], languageOptions: { globals: globals.node } },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  {
    // The layering of src/: format is pure, storage never reaches up into serving or ingest.
    files: ["src/format/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            "node:fs*",
            "fs",
            "../storage/*",
            "../serve/*",
            "../ingest/*",
            "../control/*",
            "../cli/*",
          ],
        },
      ],
    },
  },
  {
    files: ["src/storage/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: ["../serve/*", "../ingest/*", "../control/*", "../cli/*"] },
      ],
    },
  },
);
