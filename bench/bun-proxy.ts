/**
 * The floor for any Bun proxy: Bun.serve relaying each request to the
 * upstream with fetch and streaming the answer back untouched. A reference
 * row in bench/gateway-overhead.ts, so the gap to nginx that is Bun's own is
 * told apart from the gap that is the gateway's work.
 *
 * `bun bench/bun-proxy.ts <upstream URL>` prints `{"url": …}` once it listens
 * and exits when its stdin closes.
 */
export {};

const upstream = process.argv[2];
if (upstream === undefined) {
  console.error("usage: bun bench/bun-proxy.ts <upstream URL>");
  process.exit(2);
}
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  idleTimeout: 0,
  async fetch(request) {
    const url = new URL(request.url);
    const answer = await fetch(`${upstream}${url.pathname}`, {
      method: request.method,
      headers: { "content-type": request.headers.get("content-type") ?? "application/json" },
      body: request.method === "POST" ? await request.arrayBuffer() : null,
      decompress: false,
    } as RequestInit);
    return new Response(answer.body, {
      status: answer.status,
      headers: { "content-type": answer.headers.get("content-type") ?? "application/octet-stream" },
    });
  },
});
process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${server.port}` })}\n`);
for await (const _ of Bun.stdin.stream()) {
  // wait for EOF: the benchmark is gone
}
server.stop(true);
process.exit(0);
