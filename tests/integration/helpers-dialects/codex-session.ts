/**
 * One Codex session against a gateway started here on the tiny model,
 * printed as JSON on stdout: the Codex test runs this script in a network
 * namespace of its own where only loopback exists (`unshare -n`), so
 * nothing Codex does can reach beyond this machine.
 */
import { codexBinary, runCodex } from "./codex.ts";
import { startRecordingProxy } from "./recording-proxy.ts";
import { startTestGateway, TINY_ID } from "./test-gateway.ts";

const KEY = "sk-codex-test";
const binary = codexBinary();
if (binary === undefined) throw new Error("no Codex binary for this platform");
// Codex's first request is ~40 KB of instructions and tool schemas (~18k tokens for the tiny model).
const gw = await startTestGateway({ apiKeys: [KEY], models: [{ id: TINY_ID, contextSize: 32768 }] });
const proxy = startRecordingProxy(gw.url);
try {
  const run = await runCodex({
    binary,
    baseUrl: proxy.url,
    apiKey: KEY,
    model: TINY_ID,
    prompt: "Say hello.",
  });
  const requests = proxy.exchanges.map(({ method, path, status, streamed, body }) => ({
    method,
    path,
    status,
    streamed,
    body: body === "" ? undefined : JSON.parse(body),
  }));
  console.log(JSON.stringify({ ...run, requests }));
} finally {
  proxy.stop();
  await gw.stop();
}
