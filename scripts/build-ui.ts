/**
 * Bundles the dashboard's browser code (src/gateway/ui/client/, with
 * Bun.build: src/gateway/ui/bundle-client.ts). With `--json` it prints
 * `{js, css}` for the macro that inlines them into the compiled binary
 * (src/gateway/ui/inline-client.ts); without, it prints their sizes, raw and
 * gzipped (docs/GATEWAY.md quotes them).
 */
import { bundleClient } from "../src/gateway/ui/bundle-client.ts";

const { js, css } = await bundleClient();
if (process.argv.includes("--json")) process.stdout.write(JSON.stringify({ js, css }));
else {
  const size = (text: string) =>
    `${(text.length / 1024).toFixed(1)} KiB (${(Bun.gzipSync(text).length / 1024).toFixed(1)} KiB gzipped)`;
  console.log(`dashboard script: ${size(js)}\ndashboard styles: ${size(css)}`);
}
