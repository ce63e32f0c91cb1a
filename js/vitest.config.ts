import { defineConfig } from "vitest/config";

// Pure-logic tests run in node; DOM tests opt in with `// @vitest-environment jsdom`.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
