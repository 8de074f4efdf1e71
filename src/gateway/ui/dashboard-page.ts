/**
 * `GET /ui`, `/ui/app.js`, `/ui/app.css`: the dashboard's page and its
 * bundled assets (client-assets.ts). The page holds
 * no data: everything it shows comes from the admin API, with the admin
 * token the page's login form keeps in sessionStorage. A strict CSP keeps
 * it from loading anything but its own assets and from being framed.
 */
import { clientAssets } from "./client-assets.ts";

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
} as const;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>cortex dashboard</title>
<link rel="stylesheet" href="/ui/app.css">
<script type="module" src="/ui/app.js"></script>
</head>
<body>
<noscript>The cortex dashboard needs JavaScript.</noscript>
<div id="app"></div>
</body>
</html>
`;

/** The response for a /ui path, or undefined for a path that is none of the page's. */
export async function dashboardAsset(pathname: string): Promise<Response | undefined> {
  if (pathname === "/ui" || pathname === "/ui/")
    return new Response(PAGE, {
      headers: {
        ...SECURITY_HEADERS,
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
      },
    });
  if (pathname !== "/ui/app.js" && pathname !== "/ui/app.css") return undefined;
  const assets = await clientAssets();
  const js = pathname.endsWith(".js");
  return new Response(js ? assets.js : assets.css, {
    headers: {
      ...SECURITY_HEADERS,
      "content-type": js ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8",
      // The assets change with the binary; revalidate rather than serve a stale page after an upgrade.
      "cache-control": "no-cache",
    },
  });
}
