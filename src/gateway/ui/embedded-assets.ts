/**
 * The dashboard's script and style sheet, inlined when `bun build
 * --compile` bundles the gateway (inline-client.ts). Imported only inside
 * the compiled binary (client-assets.ts): run from source, Bun's transpiler
 * cache would keep a macro's result across edits of the client.
 */
import { inlineClient } from "./inline-client.ts" with { type: "macro" };

export const EMBEDDED_ASSETS: { js: string; css: string } = inlineClient();
