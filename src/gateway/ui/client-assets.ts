/**
 * The dashboard's bundled script and style sheet: inlined in the compiled
 * binary (embedded-assets.ts), bundled once per process when run from
 * source (bundle-client.ts), so an edit of the client shows on the next
 * start. Either way only on the first /ui request.
 */
import type { ClientAssets } from "./bundle-client.ts";

/** Bun's compiled executables run their modules from this virtual folder. */
const COMPILED = import.meta.dir.startsWith("/$bunfs/");

let assets: Promise<ClientAssets> | undefined;

export function clientAssets(): Promise<ClientAssets> {
  assets ??= COMPILED
    ? import("./embedded-assets.ts").then((module) => module.EMBEDDED_ASSETS)
    : import("./bundle-client.ts").then((module) => module.bundleClient());
  // A failed bundle is tried again on the next request rather than kept.
  assets.catch(() => {
    assets = undefined;
  });
  return assets;
}
