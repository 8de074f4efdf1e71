import { defineCommand } from "citty";
import { z } from "zod";
import { CatalogueResponse } from "../../core/admin-api.ts";
import { defaultGatewayUrl, gatewayRequest } from "../gateway-client.ts";
import { renderCatalogue } from "../render-status.ts";
import { pullCommand, rmCommand } from "./models-pull.ts";
import { gatewayArgs } from "./status.ts";

const ActionResult = z.object({ ok: z.boolean(), message: z.string().optional() }).loose();

function clientOptions(args: { gateway?: string | undefined; token?: string | undefined }) {
  return {
    url: args.gateway ?? defaultGatewayUrl(),
    token: args.token ?? process.env.CORTEX_ADMIN_TOKEN,
    timeoutMs: 600_000,
  };
}

const ls = defineCommand({
  meta: { name: "ls", description: "List the catalogue and where each model is loaded" },
  args: { ...gatewayArgs, json: { type: "boolean", description: "Print JSON for scripts" } },
  async run({ args }) {
    const catalogue = await gatewayRequest(clientOptions(args), "GET", "v1/models", CatalogueResponse);
    process.stdout.write(
      args.json ? `${JSON.stringify(catalogue.data, null, 2)}\n` : `${renderCatalogue(catalogue.data)}\n`,
    );
  },
});

function action(name: "load" | "unload" | "pin" | "unpin", description: string) {
  return defineCommand({
    meta: { name, description },
    args: {
      model: { type: "positional", description: "Model id or alias", required: true },
      node: { type: "string", description: "Node name (default: let the router choose / every node)" },
      ...(name === "unload"
        ? { force: { type: "boolean", description: "Unload even with requests in flight" } }
        : {}),
      ...gatewayArgs,
    },
    async run({ args }) {
      const body = {
        model: args.model,
        ...(args.node ? { node: args.node } : {}),
        ...(args.force ? { force: true } : {}),
      };
      const result = await gatewayRequest(
        clientOptions(args),
        "POST",
        `admin/models/${name}`,
        ActionResult,
        body,
      );
      process.stdout.write(`${result.message ?? `${name} ${args.model}: ok`}\n`);
    },
  });
}

export const modelsCommand = defineCommand({
  meta: {
    name: "models",
    description: "List, load, unload, pin, unpin, pull and remove models through the gateway",
  },
  subCommands: {
    ls,
    load: action("load", "Load a model (on the node the router picks, or --node)"),
    unload: action("unload", "Unload a model (everywhere, or on --node)"),
    pin: action("pin", "Pin a model: never evicted"),
    unpin: action("unpin", "Unpin a model"),
    pull: pullCommand,
    rm: rmCommand,
  },
});
