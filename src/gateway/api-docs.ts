/**
 * /docs (the OpenAPI page) and /docs/json (the spec), loaded on their first
 * request. `@elysiajs/swagger` and the theme package it imports hold ~8 MiB
 * resident once loaded, in every gateway, for a page few operators open; so
 * the gateway registers two placeholder routes and builds the plugin, in an
 * Elysia of its own that reads the gateway's routes, only when one is asked.
 */
import type { Elysia } from "elysia";

export interface ApiDocsInfo {
  title: string;
  version: string;
  description: string;
}

/** The routes the spec describes: the gateway's, as the plugin would see them mounted in it. */
interface RouteSource {
  getGlobalRoutes(): unknown;
  getGlobalDefinitions?(): unknown;
}

/** Adds GET /docs and GET /docs/json to `app`, answered by the swagger plugin loaded on first use. */
export function mountApiDocs(app: Elysia, info: ApiDocsInfo): void {
  let docs: Promise<(request: Request) => Response | Promise<Response>> | undefined;
  const load = async () => {
    const [{ Elysia }, { swagger }] = await Promise.all([import("elysia"), import("@elysiajs/swagger")]);
    const side = new Elysia().use(swagger({ path: "/docs", documentation: { info } }));
    // The plugin asks its parent for the routes to describe: make that the gateway.
    const source = app as unknown as RouteSource;
    Object.assign(side, {
      getGlobalRoutes: () => source.getGlobalRoutes(),
      getGlobalDefinitions: () => source.getGlobalDefinitions?.(),
    });
    return (request: Request) => side.handle(request);
  };
  const handle = async ({ request }: { request: Request }) => {
    docs ??= load().catch((error: unknown) => {
      docs = undefined; // a failed load is tried again on the next request
      throw error;
    });
    return (await docs)(request);
  };
  // Hidden from the spec, as the plugin's own two routes are.
  app.get("/docs", handle, { detail: { hide: true } }).get("/docs/json", handle, { detail: { hide: true } });
}
