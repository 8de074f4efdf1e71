/**
 * The dashboard's bundled script and style sheet, inlined at build time
 * (bundle-client.ts). Imported lazily, on the first /ui request, so a
 * gateway that nobody opens the page of never bundles it when run from
 * source.
 */
import { bundleClient } from "./bundle-client.ts" with { type: "macro" };

export const CLIENT_ASSETS: { js: string; css: string } = bundleClient();
