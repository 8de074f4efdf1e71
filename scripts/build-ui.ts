/**
 * Bundles the dashboard's browser code (src/gateway/ui/client/) with
 * Bun.build: one minified ES module and one style sheet. With `--json` it
 * prints `{js, css}` for the macro that inlines them into the gateway
 * (src/gateway/ui/bundle-client.ts); without, it prints their sizes, raw and
 * gzipped (docs/GATEWAY.md quotes them).
 */
import { join } from "node:path";

const entry = join(import.meta.dir, "../src/gateway/ui/client/main.ts");
const built = await Bun.build({ entrypoints: [entry], target: "browser", format: "esm", minify: true });
if (!built.success) {
  for (const message of built.logs) console.error(message);
  process.exit(1);
}
const js = await built.outputs.find((output) => output.path.endsWith(".js"))?.text();
const css = (await built.outputs.find((output) => output.path.endsWith(".css"))?.text()) ?? "";
if (js === undefined) {
  console.error("build-ui: Bun.build produced no script");
  process.exit(1);
}
if (process.argv.includes("--json")) process.stdout.write(JSON.stringify({ js, css }));
else {
  const size = (text: string) =>
    `${(text.length / 1024).toFixed(1)} KiB (${(Bun.gzipSync(text).length / 1024).toFixed(1)} KiB gzipped)`;
  console.log(`dashboard script: ${size(js)}\ndashboard styles: ${size(css)}`);
}
