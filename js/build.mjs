// Bundles every top-level js/src/*.ts file into ../llmasos_widgets/static/<name>.js
// (+ <name>.css when the entry imports CSS). Shared code lives in js/src/lib/ and is
// inlined into each bundle, so every widget is one self-contained ESM file (anywidget
// loads `_esm` as a single module; nothing is fetched from a CDN).
//   node build.mjs           one production build
//   node build.mjs --watch   rebuild on change (pair with ANYWIDGET_HMR=1 in the kernel)
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const srcDir = join(here, "src");
const outDir = join(here, "..", "llmasos_widgets", "static");
const watch = process.argv.includes("--watch");

const entryPoints = readdirSync(srcDir)
  .filter((name) => name.endsWith(".ts") && !name.endsWith(".d.ts"))
  .map((name) => join(srcDir, name));

const options = {
  entryPoints,
  outdir: outDir,
  bundle: true,
  format: "esm",
  target: ["es2020"],
  minify: !watch,
  sourcemap: false,
  legalComments: "none",
  logLevel: "info",
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
