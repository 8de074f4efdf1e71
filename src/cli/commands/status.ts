import { defineCommand } from "citty";
import { FleetView } from "../../core/admin-api.ts";
import { defaultGatewayUrl, gatewayRequest } from "../gateway-client.ts";
import { renderPullsInFlight } from "../render-pulls.ts";
import { renderStatus } from "../render-status.ts";

export const gatewayArgs = {
  gateway: {
    type: "string",
    alias: "g",
    description: "Gateway URL (env CORTEX_GATEWAY_URL, default http://127.0.0.1:31313)",
    valueHint: "url",
  },
  token: { type: "string", description: "Admin token (env CORTEX_ADMIN_TOKEN)", valueHint: "token" },
} as const;

export const statusCommand = defineCommand({
  meta: {
    name: "status",
    description: "Show the fleet: nodes, devices, memory, loaded models, pulls in flight",
  },
  args: { ...gatewayArgs, json: { type: "boolean", description: "Print JSON for scripts" } },
  async run({ args }) {
    const fleet = await gatewayRequest(
      { url: args.gateway ?? defaultGatewayUrl(), token: args.token ?? process.env.CORTEX_ADMIN_TOKEN },
      "GET",
      "admin/fleet",
      FleetView,
    );
    const pulls = renderPullsInFlight(
      fleet.nodes.map((node) => ({ node: node.name, pulls: node.pulls ?? [] })),
    );
    process.stdout.write(
      args.json
        ? `${JSON.stringify(fleet, null, 2)}\n`
        : `${renderStatus(fleet, Date.now())}\n${pulls === "" ? "" : `\n${pulls}\n`}`,
    );
    return fleet.nodes.some((node) => node.state === "up") || fleet.nodes.length === 0 ? 0 : 1;
  },
});
