/**
 * Issue 18 §5, in part: a GGUF whose chat template does not parse loaded
 * fine, and then every chat was a 500. Now the load fails with 422
 * invalid_model_file naming the file and the parse error, and nothing stays
 * loaded.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { gv, writeGguf } from "../../src/neuron/gguf/gguf-writer.ts";
import { buildTinyModel } from "../../src/neuron/gguf/tiny-model.ts";
import { loadedIds, RealFleet } from "../integration/helpers/real-fleet.ts";

let fleet: RealFleet;
let url: string;

beforeAll(async () => {
  fleet = await RealFleet.start([{ name: "n", files: [] }]);
  url = fleet.neuron("n").url;
  const { spec } = buildTinyModel();
  const metadata = spec.metadata.map(
    ([name, value]) =>
      [
        name,
        name === "tokenizer.chat_template" ? gv.str("{% for message in messages %}{{ message") : value,
      ] as const,
  );
  await writeGguf(join(fleet.dir, "n", "broken.gguf"), { ...spec, metadata });
}, 60_000);

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
