/**
 * A recording HTTP proxy in front of the gateway: it keeps every request
 * Claude Code sends (headers, body) and the status it got, and can cut the
 * next streamed answer short after its first event, as a dropped connection
 * would, to drive a client's non-streaming fallback.
 */

export interface RecordedExchange {
  method: string;
  /** Path and query, e.g. `/v1/messages?beta=true`. */
  path: string;
  headers: Record<string, string>;
  body: string;
  status: number;
  /** The answer, when it was JSON (errors, non-streamed messages). */
  json?: unknown;
  streamed: boolean;
  /** A streamed answer's whole text, once the stream has ended. */
  streamText?: Promise<string>;
}

export interface RecordingProxy {
  url: string;
  exchanges: RecordedExchange[];
  /** Streamed 200 answers still to cut short after their first event. */
  cutStreams: number;
  stop(): void;
}

export function startRecordingProxy(target: string): RecordingProxy {
  const proxy: RecordingProxy = {
    url: "",
    exchanges: [],
    cutStreams: 0,
    stop: () => server.stop(true),
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(request) {
      const url = new URL(request.url);
      const body = request.method === "GET" || request.method === "HEAD" ? "" : await request.text();
      const headers = new Headers(request.headers);
      headers.delete("host");
      const response = await fetch(`${target}${url.pathname}${url.search}`, {
        method: request.method,
        headers,
        ...(body === "" ? {} : { body }),
      });
      const streamed = (response.headers.get("content-type") ?? "").startsWith("text/event-stream");
      const exchange: RecordedExchange = {
        method: request.method,
        path: `${url.pathname}${url.search}`,
        headers: Object.fromEntries(request.headers),
        body,
        status: response.status,
        streamed,
      };
      proxy.exchanges.push(exchange);
      const outHeaders = new Headers(response.headers);
      outHeaders.delete("content-length");
      outHeaders.delete("content-encoding");
      if (!streamed) {
        const text = await response.text();
        try {
          exchange.json = JSON.parse(text);
        } catch {
          // not JSON: keep the status only
        }
        return new Response(text, { status: response.status, headers: outHeaders });
      }
      if (proxy.cutStreams > 0 && response.status === 200) {
        proxy.cutStreams -= 1;
        const text = await response.text();
        const first = text.slice(0, text.indexOf("\n\n") + 2);
        return new Response(first, { status: 200, headers: outHeaders });
      }
      if (!response.body) return new Response(null, { status: response.status, headers: outHeaders });
      const [toClient, kept] = response.body.tee();
      exchange.streamText = new Response(kept).text();
      return new Response(toClient, { status: response.status, headers: outHeaders });
    },
  });
  proxy.url = `http://127.0.0.1:${server.port}`;
  return proxy;
}
