/**
 * Issue 18 §5: a chat template with a huge loop blocked the neuron's main
 * thread (no `/health` answer for 120 s); one that did not parse loaded
 * fine, and then every chat was a 500. Now templates render in a Worker
 * within neuron.template_timeout_s, and a template that does not parse fails
 * the load with 422 invalid_model_file.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { gv, writeGguf } from "../../src/neuron/gguf/gguf-writer.ts";
import { buildTinyModel } from "../../src/neuron/gguf/tiny-model.ts";
import { chatBody } from "../integration/helpers/gateway-requests.ts";
import { loadedIds, neuronCall, RealFleet } from "../integration/helpers/real-fleet.ts";

let fleet: RealFleet;
let url: string;

beforeAll(async () => {
  fleet = await RealFleet.start([{ name: "n", files: [], config: { template_timeout_s: 0.3 } }]);
  url = fleet.neuron("n").url;
  await writeTinyWithTemplate("broken.gguf", "{% for message in messages %}{{ message");
  await writeTinyWithTemplate("looping.gguf", "{% for i in range(1000000000) %}x{% endfor %}");
}, 60_000);

async function writeTinyWithTemplate(file: string, template: string): Promise<void> {
  const { spec } = buildTinyModel();
  const metadata = spec.metadata.map(
    ([name, value]) => [name, name === "tokenizer.chat_template" ? gv.str(template) : value] as const,
  );
  await writeGguf(join(fleet.dir, "n", file), { ...spec, metadata });
}

afterAll(async () => {
  await fleet?.stop();
});

test("a chat template that does not parse fails the load with 422, naming the file", async () => {
  const response = await fetch(`${url}/models/load`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id: "broken", file: "broken.gguf" }),
  });
  expect(response.status).toBe(422);
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe("invalid_model_file");
  expect(body.error.message).toContain("broken.gguf");
  expect(await loadedIds(url)).toEqual([]);
});

test("a template that loops is stopped after template_timeout_s while /health answers", async () => {
  await neuronCall(url, "/models/load", { id: "looping", file: "looping.gguf" });
  const answer = fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(chatBody("looping", { max_tokens: 4 })),
  });
  // Answered while the template renders: the main thread is free.
  expect((await fetch(`${url}/health`)).status).toBe(200);
  const refused = await answer;
  expect(refused.status).toBe(400);
  expect(((await refused.json()) as { error: { message: string } }).error.message).toContain(
    "neuron.template_timeout_s",
  );
});
