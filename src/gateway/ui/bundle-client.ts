/**
 * Bundles the dashboard's browser code (client/) with Bun.build: one
 * minified ES module and one style sheet. Run from source (development,
 * tests) the gateway calls this on the first /ui request; the compiled
 * binary carries the same output inlined at build time (embedded-assets.ts).
 */
export interface ClientAssets {
  js: string;
  css: string;
}

export async function bundleClient(): Promise<ClientAssets> {
  const built = await Bun.build({
    entrypoints: [`${import.meta.dir}/client/main.ts`],
    target: "browser",
    format: "esm",
    minify: true,
  });
  if (!built.success) throw new AggregateError(built.logs, "bundling the dashboard failed");
  const js = await built.outputs.find((output) => output.path.endsWith(".js"))?.text();
  const css = await built.outputs.find((output) => output.path.endsWith(".css"))?.text();
  if (js === undefined) throw new Error("bundling the dashboard produced no script");
  return { js, css: css ?? "" };
}
