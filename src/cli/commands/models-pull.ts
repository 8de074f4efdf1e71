/**
 * `cortex models pull` and `cortex models rm`. A pull asks the gateway to
 * start it on the chosen nodes, then follows each node's pull to its end:
 * on a terminal, one progress line per node rewritten in place; otherwise
 * (a pipe, a log) a line per node whenever its state changes or it passes
 * another quarter, so the output stays readable. Exits 1 when any node failed.
 */
import { defineCommand } from "citty";
import { z } from "zod";
import {
  AdminPullResponse,
  AdminPullsResponse,
  type NodePulls,
  type PullStatus,
} from "../../core/pull-api.ts";
import { EXIT } from "../exit-codes.ts";
import { defaultGatewayUrl, gatewayRequest } from "../gateway-client.ts";
import { renderPullLine } from "../render-pulls.ts";
import { gatewayArgs } from "./status.ts";

const POLL_MS = 500;

function clientOptions(args: { gateway?: string | undefined; token?: string | undefined }) {
  return {
    url: args.gateway ?? defaultGatewayUrl(),
    token: args.token ?? process.env.CORTEX_ADMIN_TOKEN,
    timeoutMs: 600_000,
  };
}

/** Every `--node` value (citty keeps only the last of a repeated flag), commas splitting too. */
export function nodeFlags(rawArgs: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i] ?? "";
    const value = arg === "--node" ? rawArgs[++i] : arg.startsWith("--node=") ? arg.slice(7) : undefined;
    if (value !== undefined) out.push(...value.split(",").filter((name) => name !== ""));
  }
  return out;
}

interface Tracked {
  node: string;
  id?: string;
  status?: PullStatus;
  error?: string;
  /** What a non-terminal last printed for it (state and quarter). */
  printed?: string;
}

const finished = (entry: Tracked) =>
  entry.error !== undefined || entry.status?.state === "done" || entry.status?.state === "failed";

function update(tracked: Tracked[], nodes: readonly NodePulls[]): void {
  for (const entry of tracked) {
    if (entry.id === undefined || finished(entry)) continue;
    const node = nodes.find((candidate) => candidate.node === entry.node);
    const status = node?.pulls.find((pull) => pull.id === entry.id);
    if (status !== undefined) entry.status = status;
    else if (node?.error === undefined)
      entry.error = `${entry.node} no longer reports pull ${entry.id} (did the neuron restart?)`;
  }
}

/** A terminal: rewrite the block of lines in place. Anything else: print what changed. */
function draw(tracked: Tracked[], tty: boolean, previousLines: number): number {
  if (tty) {
    const lines = tracked.map((entry) => renderPullLine(entry.node, entry.status, entry.error));
    const up = previousLines > 0 ? `\x1b[${previousLines}F` : "";
    process.stdout.write(`${up}${lines.map((line) => `\x1b[2K${line}\n`).join("")}`);
    return lines.length;
  }
  for (const entry of tracked) {
    const quarter =
      entry.status === undefined || entry.status.bytesTotal === 0
        ? 0
        : Math.floor((entry.status.bytesDone / entry.status.bytesTotal) * 4);
    const key = `${entry.status?.state ?? "error"}:${quarter}:${entry.error ?? ""}`;
    if (key === entry.printed) continue;
    entry.printed = key;
    process.stdout.write(`${renderPullLine(entry.node, entry.status, entry.error)}\n`);
  }
  return 0;
}

export const pullCommand = defineCommand({
  meta: {
    name: "pull",
    description:
      "Pull a GGUF model from Hugging Face onto nodes: org/repo:QUANT or org/repo/file.gguf (or --profile ID)",
  },
  args: {
    source: {
      type: "positional",
      description: "org/repo:QUANT, org/repo/path/file.gguf (hf: prefix optional)",
      required: false,
    },
    node: {
      type: "string",
      description: "Node to pull on (repeat or comma-separate; default: every live node)",
    },
    profile: {
      type: "string",
      description: "Pull the source of this [[models]] profile (on its affinity nodes)",
    },
    json: { type: "boolean", description: "Print the final pulls as JSON for scripts" },
    ...gatewayArgs,
  },
  async run({ args, rawArgs }) {
    const options = clientOptions(args);
    const nodes = nodeFlags(rawArgs);
    if ((args.source === undefined) === (args.profile === undefined)) {
      process.stderr.write("error: give a source (org/repo:QUANT) or --profile ID, not both\n");
      return EXIT.usage;
    }
    const started = await gatewayRequest(options, "POST", "admin/models/pull", AdminPullResponse, {
      ...(args.source === undefined ? {} : { source: args.source }),
      ...(args.profile === undefined ? {} : { profile: args.profile }),
      ...(nodes.length === 0 ? {} : { nodes }),
    });
    const tracked: Tracked[] = started.nodes.map((entry) => ({
      node: entry.node,
      ...(entry.pull === undefined ? {} : { id: entry.pull.id, status: entry.pull }),
      ...(entry.error === undefined ? {} : { error: entry.error }),
    }));
    const tty = process.stdout.isTTY === true && !args.json;
    let lines = args.json ? 0 : draw(tracked, tty, 0);
    while (!tracked.every(finished)) {
      await Bun.sleep(POLL_MS);
      const pulls = await gatewayRequest(options, "GET", "admin/models/pulls", AdminPullsResponse);
      update(tracked, pulls.nodes);
      if (!args.json) lines = draw(tracked, tty, lines);
    }
    if (args.json)
      process.stdout.write(
        `${JSON.stringify(
          tracked.map(({ node, status, error }) => ({
            node,
            ...(status ? { pull: status } : {}),
            ...(error ? { error } : {}),
          })),
          null,
          2,
        )}\n`,
      );
    return tracked.every((entry) => entry.status?.state === "done") ? EXIT.ok : EXIT.failure;
  },
});

const ActionResult = z.object({ ok: z.boolean(), message: z.string().optional() }).loose();

export const rmCommand = defineCommand({
  meta: { name: "rm", description: "Delete a model's GGUF file from nodes (refused while it is loaded)" },
  args: {
    model: {
      type: "positional",
      description: "Profile id or alias, or a file in the models directory",
      required: true,
    },
    node: { type: "string", description: "Only on this node (default: every node that has the file)" },
    ...gatewayArgs,
  },
  async run({ args }) {
    const result = await gatewayRequest(clientOptions(args), "POST", "admin/models/rm", ActionResult, {
      model: args.model,
      ...(args.node ? { node: args.node } : {}),
    });
    process.stdout.write(`${result.message ?? `rm ${args.model}: ok`}\n`);
  },
});
