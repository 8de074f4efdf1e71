/**
 * Issue 18 §6: truncating a loaded model's file in place killed the neuron
 * (SIGBUS on the mapped file, at the next page the model touched). Now each
 * chat first checks the file against what was loaded; a changed one is
 * unloaded with a clear, retryable error, and the neuron stays up.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { statSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { chatBody } from "../integration/helpers/gateway-requests.ts";
import { loadedIds, neuronCall, RealFleet } from "../integration/helpers/real-fleet.ts";

let fleet: RealFleet;
let url: string;

beforeAll(async () => {
  fleet = await RealFleet.start([{ name: "n", files: ["a.gguf"] }]);
  url = fleet.neuron("n").url;
  await neuronCall(url, "/models/load", { id: "a", file: "a.gguf" });
}, 60_000);

afterAll(async () => {
  await fleet?.stop();
});

function chat(): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(chatBody("a", { max_tokens: 4 })),
  });
}

test("a model file truncated in place is unloaded at the next chat, and the neuron stays up", async () => {
  expect((await chat()).status).toBe(200);
  const path = join(fleet.dir, "n", "a.gguf");
  truncateSync(path, Math.floor(statSync(path).size / 2));
  const refused = await chat();
  expect(refused.status).toBe(503);
  const body = (await refused.json()) as { error: { message: string } };
  expect(body.error.message).toContain("changed in place");
  expect(body.error.message).toContain("renaming");
  expect((await fetch(`${url}/health`)).status).toBe(200);
  expect(await loadedIds(url)).toEqual([]);
});
