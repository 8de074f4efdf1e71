/**
 * A rolling restart under steady streaming load: every neuron, then every
 * gateway, is drained (what SIGTERM does) and replaced, one at a time, while
 * clients keep streaming through a round-robin "service" in front of the
 * gateways. Nothing may fail: no request that had not started, and every
 * started stream runs to its end.
 *
 * The service plays a Kubernetes Service: a gateway leaves its rotation
 * before it drains, and the requests already sent to it have reached it (their
 * headers came back) before the drain closes its listener. That is what
 * `gateway.drain_delay_s` buys in a cluster, where endpoints are removed
 * while the pod is already terminating.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chat, messages, readSse } from "../integration/helpers/gateway-requests.ts";
import {
  configToml,
  type NeuronSpec,
  noEndBias,
  profile,
  RealFleet,
  type TestGateway,
  until,
  waitForFleet,
} from "../integration/helpers/real-fleet.ts";

const SPECS: NeuronSpec[] = [
  { name: "a", files: ["tiny.gguf"] },
  { name: "b", files: ["tiny.gguf"] },
];
const LOOPS = 4;

let fleet: RealFleet;
let toml: string;
let noEnd: Record<string, number>;

beforeAll(async () => {
  fleet = await RealFleet.start(SPECS);
  noEnd = await noEndBias(fleet.modelPath);
  toml = configToml({ models: [profile("tiny", "tiny.gguf")] });
}, 60_000);

afterAll(async () => {
  await fleet?.stop();
});

/** Round robin over the gateways in rotation, remembering what was sent where. */
class Service {
  #members: TestGateway[] = [];
  #next = 0;
  readonly #sent = new Map<TestGateway, Set<Promise<unknown>>>();

  add(gateway: TestGateway): void {
    this.#members.push(gateway);
    this.#sent.set(gateway, new Set());
  }

  /** Takes `gateway` out of rotation; resolves once every request sent to it has its answer's headers. */
  async remove(gateway: TestGateway): Promise<void> {
    this.#members = this.#members.filter((member) => member !== gateway);
    await Promise.allSettled([...(this.#sent.get(gateway) ?? [])]);
  }

  send(request: (url: string) => Promise<Response>): Promise<Response> {
    const gateway = this.#members[this.#next++ % this.#members.length];
    if (gateway === undefined) throw new Error("no gateway in rotation");
    const headers = request(gateway.url);
    const sent = this.#sent.get(gateway);
    sent?.add(headers);
    void headers.finally(() => sent?.delete(headers)).catch(() => {});
    return headers;
  }
}

interface Outcome {
  kind: "stream" | "plain";
  ok: boolean;
  detail: string;
}

/** One client: streams (OpenAI) and plain requests (Anthropic) until `stop()` says so. */
async function client(service: Service, id: number, running: () => boolean, outcomes: Outcome[]) {
  for (let i = 0; running(); i++) {
    const streamed = (i + id) % 3 !== 0;
    try {
      if (streamed) {
        const response = await service.send((url) =>
          chat(url, "tiny", { stream: true, extra: { max_tokens: 48, logit_bias: noEnd } }),
        );
        if (!response.ok) {
          outcomes.push({ kind: "stream", ok: false, detail: `${response.status} ${await response.text()}` });
          continue;
        }
        const frames = await readSse(response, 60_000);
        const errors = frames.filter((frame) => frame.data.includes('"error"'));
        const done = frames.at(-1)?.data === "[DONE]";
        outcomes.push({
          kind: "stream",
          ok: done && errors.length === 0,
          detail: done ? (errors[0]?.data ?? "") : `ended without [DONE]: ${frames.at(-1)?.data}`,
        });
      } else {
        const response = await service.send((url) => messages(url, "tiny"));
        const body = await response.text();
        outcomes.push({ kind: "plain", ok: response.ok, detail: `${response.status} ${body.slice(0, 200)}` });
      }
    } catch (error) {
      outcomes.push({ kind: streamed ? "stream" : "plain", ok: false, detail: String(error) });
    }
  }
}

test("every neuron and every gateway restarted one by one under streaming load: nothing fails", async () => {
  const service = new Service();
  const gateways = [await fleet.gateway({ toml }), await fleet.gateway({ toml })];
  for (const gateway of gateways) service.add(gateway);
  const outcomes: Outcome[] = [];
  let running = true;
  const clients = Array.from({ length: LOOPS }, (_, id) => client(service, id, () => running, outcomes));

  const inFlightAtDrain: number[] = [];
  for (const spec of SPECS) {
    // Drain while this neuron has answers running, so the drain has something to wait for.
    await until(
      () => fleet.neuron(spec.name).running.inFlight() > 0,
      30_000,
      () => `no request on ${spec.name}`,
    );
    inFlightAtDrain.push(fleet.neuron(spec.name).running.inFlight());
    await fleet.restartNeuron(spec.name, spec);
    // The replacement is back in every gateway's view before the next one goes.
    for (const gateway of gateways)
      await waitForFleet(gateway, (nodes) => nodes.find((node) => node.name === spec.name)?.state === "up");
  }
  for (const [index, old] of [...gateways].entries()) {
    await service.remove(old);
    await old.running.drain();
    const replacement = await fleet.gateway({ toml });
    gateways[index] = replacement;
    service.add(replacement);
  }
  // Some more traffic on the new gateways, then stop.
  const target = outcomes.length + LOOPS * 2;
  await until(
    () => outcomes.length >= target,
    60_000,
    () => `${outcomes.length} of ${target} requests`,
  );
  running = false;
  await Promise.all(clients);

  const failed = outcomes.filter((outcome) => !outcome.ok);
  expect(failed).toEqual([]);
  expect(inFlightAtDrain.every((count) => count > 0)).toBe(true);
  expect(outcomes.filter((outcome) => outcome.kind === "stream").length).toBeGreaterThan(LOOPS);
}, 180_000);
