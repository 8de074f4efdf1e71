/**
 * Prefix reuse on the real libllama: a request that shares a prefix with what
 * a slot's KV already holds prefills only the rest, reports the reused part as
 * cached tokens, and answers byte for byte what a cold prefill answers. A
 * random-weight model is used because its attention reads the KV cache (the
 * tiny bigram model's output does not depend on it), so a stale or misplaced
 * cell would change the text.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DevicePool } from "../../src/neuron/engine/device-pool.ts";
import type { GenerationEvent, Usage } from "../../src/neuron/engine/types.ts";
import { writeRandomModel } from "../../src/neuron/gguf/random-model.ts";
import { renderChatTemplate } from "../../src/neuron/prompt/chat-template.ts";
import type { TemplateMessage } from "../../src/neuron/prompt/template-messages.ts";

/** The model's own chat template, as the neuron renders a chat. */
function render(model: string, messages: TemplateMessage[]): string {
  const info = pool.model(model);
  if (!info?.chatTemplate) throw new Error(`${model} has no chat template`);
  return renderChatTemplate(info.chatTemplate, { messages }, info);
}

const TMP_DIR = "tests/.tmp/models";
let pool: DevicePool;

interface Answer {
  text: string;
  usage: Usage;
}

async function ask(model: string, messages: TemplateMessage[]): Promise<Answer> {
  const prompt = render(model, messages);
  let text = "";
  let usage: Usage | undefined;
  for await (const event of pool.generate(model, {
    prompt,
    temperature: 0,
    maxTokens: 16,
  }) as AsyncIterable<GenerationEvent>) {
    if (event.type === "text") text += event.text;
    if (event.type === "done") usage = event.usage;
    if (event.type === "error") throw new Error(event.error.message);
  }
  if (!usage) throw new Error("no usage");
  return { text, usage };
}

/** The same request on a cleared KV cache: nothing to reuse. */
async function cold(model: string, messages: TemplateMessage[]): Promise<Answer> {
  await pool.resetKv(model);
  const answer = await ask(model, messages);
  expect(answer.usage.cachedTokens).toBe(0);
  return answer;
}

const SYSTEM_TEXT =
  "You are a baker in a small town. The miller brings flour every morning and the children come for bread after school.";
const SYSTEM: TemplateMessage = { role: "system", content: SYSTEM_TEXT };
const FIRST: TemplateMessage = { role: "user", content: "Tell me about the baker and the miller." };

beforeAll(async () => {
  mkdirSync(TMP_DIR, { recursive: true });
  const path = join(TMP_DIR, "prefix-random-8m.gguf");
  await writeRandomModel(path, 8 * 2 ** 20, 11);
  pool = await DevicePool.start({ threads: 1, promptCacheBytes: 64 * 2 ** 20 });
  await pool.load({ id: "rand", path, contextSize: 1024, slots: 2 });
  await pool.load({ id: "rand-1", path, contextSize: 1024, slots: 1 });
}, 60_000);

afterAll(async () => {
  await pool.close();
});

describe("prefix reuse of a slot's KV cache", () => {
  test("an exact repeat reuses all but the last prompt token and answers the same", async () => {
    const baseline = await cold("rand", [SYSTEM, FIRST]);
    const again = await ask("rand", [SYSTEM, FIRST]);
    expect(again.text).toBe(baseline.text);
    expect(again.usage.promptTokens).toBe(baseline.usage.promptTokens);
    expect(again.usage.cachedTokens).toBe(baseline.usage.promptTokens - 1);
  });

  test("an appended turn reuses the whole earlier turn and answers as a cold prefill does", async () => {
    await pool.resetKv("rand");
    const first = await ask("rand", [SYSTEM, FIRST]);
    const turn2: TemplateMessage[] = [
      SYSTEM,
      FIRST,
      { role: "assistant", content: first.text },
      { role: "user", content: "And the children?" },
    ];
    const warm = await ask("rand", turn2);
    const baseline = await cold("rand", turn2);
    expect(warm.text).toBe(baseline.text);
    expect(warm.usage.promptTokens).toBe(baseline.usage.promptTokens);
    expect(warm.usage.cachedTokens).toBeGreaterThanOrEqual(first.usage.promptTokens);
    expect(warm.usage.cachedTokens).toBeLessThan(warm.usage.promptTokens);
  });

  test("an edit in an earlier message reuses only the part before the edit", async () => {
    const edited: TemplateMessage = {
      ...SYSTEM,
      content: SYSTEM_TEXT.replace("every morning", "every evening"),
    };
    const before = render("rand", [SYSTEM, FIRST]);
    const upToEdit = before.slice(0, before.indexOf("every morning"));
    const editedTurn = [edited, FIRST];
    const baseline = await cold("rand", editedTurn);

    await pool.resetKv("rand");
    await ask("rand", [SYSTEM, FIRST]);
    const warm = await ask("rand", editedTurn);
    expect(warm.text).toBe(baseline.text);
    expect(warm.usage.cachedTokens).toBeGreaterThan(0);
    expect(warm.usage.cachedTokens).toBeLessThanOrEqual(await pool.countTokens("rand", upToEdit));
  });

  test("two conversations on two slots each keep their own prefix", async () => {
    await pool.resetKv("rand");
    const other: TemplateMessage[] = [{ role: "system", content: "You sell fish at the harbour." }, FIRST];
    const a1 = await ask("rand", [SYSTEM, FIRST]);
    const b1 = await ask("rand", other);
    const a2 = await ask("rand", [SYSTEM, FIRST]);
    const b2 = await ask("rand", other);
    expect(a2.text).toBe(a1.text);
    expect(b2.text).toBe(b1.text);
    expect(a2.usage.cachedTokens).toBe(a1.usage.promptTokens - 1);
    expect(b2.usage.cachedTokens).toBe(b1.usage.promptTokens - 1);
  });
});

describe("the host-memory prompt cache", () => {
  test("a conversation whose only slot another one took comes back from host memory, answering the same", async () => {
    const other: TemplateMessage[] = [{ role: "system", content: "You sell fish at the harbour." }, FIRST];
    const turn1 = [SYSTEM, FIRST];
    const a1 = await cold("rand-1", turn1);
    const turn2: TemplateMessage[] = [
      ...turn1,
      { role: "assistant", content: a1.text },
      { role: "user", content: "And the children?" },
    ];
    const baseline = await cold("rand-1", turn2);

    await pool.resetKv("rand-1");
    await ask("rand-1", turn1);
    const b = await ask("rand-1", other);
    expect(b.usage.cachedTokens).toBeLessThan(b.usage.promptTokens / 4);
    // The slot now holds the other conversation; the first one's state was saved before it was overwritten.
    const a2 = await ask("rand-1", turn2);
    expect(a2.text).toBe(baseline.text);
    expect(a2.usage.cachedTokens).toBeGreaterThanOrEqual(a1.usage.promptTokens);
    // And the other conversation in turn was saved when the first one came back.
    const b2 = await ask("rand-1", other);
    expect(b2.text).toBe(b.text);
    expect(b2.usage.cachedTokens).toBe(b.usage.promptTokens - 1);
  });

  test("three conversations taking turns on one slot, each saved into memory another one left, answer as cold", async () => {
    const topics = ["the miller", "the children", "the oven"];
    const turns: TemplateMessage[][] = topics.map((topic) => [
      SYSTEM,
      { role: "user", content: `Tell me about ${topic}.` },
    ]);
    const expected: string[][] = [];
    for (const [i, history] of turns.entries()) expected[i] = [(await cold("rand-1", history)).text];
    for (const [i, history] of turns.entries()) {
      const next = [
        ...history,
        { role: "assistant" as const, content: expected[i]?.[0] ?? "" },
        { role: "user" as const, content: "And then?" },
      ];
      expected[i]?.push((await cold("rand-1", next)).text);
      turns[i] = next;
    }
    await pool.resetKv("rand-1");
    // Round one saves each conversation when the next takes the slot; round two restores each,
    // and saves the one it displaces into the buffer a restored state left or a spare touched while idle.
    for (const history of turns) await ask("rand-1", history.slice(0, 2));
    for (const [i, history] of turns.entries()) {
      const answer = await ask("rand-1", history);
      expect(answer.text).toBe(expected[i]?.[1] ?? "");
      expect(answer.usage.cachedTokens).toBeGreaterThan(answer.usage.promptTokens / 2);
    }
  });

  test("a saved state restored only in part stays intact for the conversation it came from", async () => {
    const long: TemplateMessage[] = [
      SYSTEM,
      {
        role: "user",
        content:
          "Tell me everything about the miller: where he lives, how he grinds the grain, what he sells at the market, which days he rests, and why the baker trusts his flour more than anyone else's in the valley.",
      },
    ];
    const edited: TemplateMessage[] = [SYSTEM, { role: "user", content: "Who is the baker?" }];
    const other: TemplateMessage[] = [{ role: "user", content: "Name a river." }];
    const expected = (await cold("rand-1", long)).text;
    await pool.resetKv("rand-1");
    await ask("rand-1", long);
    await ask("rand-1", other);
    // Shares the system prompt with the saved long conversation: less than half of it is restored, and the entry stays.
    const partial = await ask("rand-1", edited);
    expect(partial.usage.cachedTokens).toBeGreaterThan(0);
    expect(partial.usage.cachedTokens).toBeLessThan(partial.usage.promptTokens);
    // Saving the edited conversation must not write into the memory of the state it restored from.
    await ask("rand-1", other);
    const again = await ask("rand-1", long);
    expect(again.usage.cachedTokens).toBe(again.usage.promptTokens - 1);
    expect(again.text).toBe(expected);
  });
});
