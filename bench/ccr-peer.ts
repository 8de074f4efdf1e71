/**
 * The translation benchmark's peer: @musistudio/claude-code-router (CCR)
 * 3.1.1 translating Anthropic /v1/messages to an OpenAI-compatible upstream.
 *
 * CCR 3.x is a management service (config in SQLite, `node:sqlite`, Node ≥ 22)
 * that spawns its gateway as a separate Node process: `dist/main/next-ai-gateway.js`
 * (a bundle of @the-next-ai/ai-gateway, no runtime dependencies) reading a
 * generated JSON config named by GATEWAY_CONFIG_PATH. We start that gateway
 * process the same way, with a config written here, and skip the management
 * service. `npm install` of the package cannot work offline from this
 * registry (its dependencies @the-next-ai/ai-gateway and
 * @the-next-ai/bot-gateway-sdk are not served: 404), so the package tarball
 * is fetched with `npm pack` and unpacked into bench/peer-ccr/node_modules
 * (gitignored), outside the main lockfile.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { consola } from "consola";
import { z } from "zod";
import { freePort, type Service, tempDir, waitUntil } from "./bench-services.ts";

export const CCR_PACKAGE = "@musistudio/claude-code-router";
export const CCR_VERSION = "3.1.1";
const PEER_DIR = join(import.meta.dir, "peer-ccr");
const PACKAGE_DIR = join(PEER_DIR, "node_modules", "@musistudio", "claude-code-router");
const GATEWAY_ENTRY = join(PACKAGE_DIR, "dist", "main", "next-ai-gateway.js");

function installedVersion(): string | undefined {
  const manifest = join(PACKAGE_DIR, "package.json");
  if (!existsSync(manifest)) return undefined;
  return z.object({ version: z.string() }).parse(JSON.parse(readFileSync(manifest, "utf8"))).version;
}

async function run(command: string[], cwd: string): Promise<void> {
  const child = Bun.spawn(command, { cwd, stdout: "inherit", stderr: "inherit" });
  if ((await child.exited) !== 0) throw new Error(`${command.join(" ")} failed in ${cwd}`);
}

/** Unpacks CCR_PACKAGE@CCR_VERSION into bench/peer-ccr/node_modules unless it is there already. */
export async function ensureCcrInstalled(): Promise<void> {
  if (installedVersion() === CCR_VERSION && existsSync(GATEWAY_ENTRY)) return;
  consola.start(`fetching ${CCR_PACKAGE}@${CCR_VERSION} into bench/peer-ccr (outside the main lockfile)`);
  mkdirSync(PACKAGE_DIR, { recursive: true });
  const tarball = join(PEER_DIR, `musistudio-claude-code-router-${CCR_VERSION}.tgz`);
  try {
    await run(
      ["npm", "pack", "--silent", `${CCR_PACKAGE}@${CCR_VERSION}`, "--pack-destination", PEER_DIR],
      PEER_DIR,
    );
    await run(["tar", "xzf", tarball, "-C", PACKAGE_DIR, "--strip-components=1"], PEER_DIR);
  } finally {
    rmSync(tarball, { force: true });
  }
  if (installedVersion() !== CCR_VERSION || !existsSync(GATEWAY_ENTRY))
    throw new Error(`${CCR_PACKAGE}@${CCR_VERSION} did not unpack to ${PACKAGE_DIR}`);
}

/** Why the peer cannot run here, or undefined when it can (it needs `node` on PATH). */
export function ccrUnavailable(): string | undefined {
  return Bun.which("node") === null ? "node is not on PATH (CCR's gateway is a Node.js program)" : undefined;
}

/**
 * CCR's gateway process in front of `upstreamUrl` as an OpenAI chat
 * completions provider serving `model`, on a free port of 127.0.0.1, with
 * HOME and its working directory in a temp dir.
 */
export async function startCcr(options: { upstreamUrl: string; model: string }): Promise<Service> {
  const home = tempDir("ccr");
  const port = freePort();
  const configPath = join(home, "gateway.config.json");
  writeFileSync(
    configPath,
    JSON.stringify({
      host: "127.0.0.1",
      port,
      providers: [
        {
          name: "fake",
          // openai_chat_completions: the provider speaks /v1/chat/completions, not /v1/responses.
          type: "openai_chat_completions",
          baseurl: `${options.upstreamUrl}/v1`,
          apikey: "bench",
          models: [options.model],
        },
      ],
    }),
  );
  const child = Bun.spawn(["node", GATEWAY_ENTRY], {
    cwd: home,
    env: { ...process.env, HOME: home, GATEWAY_CONFIG_PATH: configPath, NODE_ENV: "production" },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "inherit",
  });
  const url = `http://127.0.0.1:${port}`;
  const service: Service = {
    name: "ccr",
    url,
    pid: child.pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await child.exited;
        clearTimeout(timer);
      }
      rmSync(home, { recursive: true, force: true });
    },
  };
  try {
    await waitUntil(
      "claude-code-router",
      async () => {
        const response = await fetch(`${url}/v1/messages`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-api-key": "bench" },
          body: JSON.stringify({
            model: options.model,
            max_tokens: 2,
            messages: [{ role: "user", content: "hi" }],
          }),
        });
        await response.arrayBuffer();
        return response.status === 200;
      },
      30_000,
      () => child.exitCode === null,
    );
  } catch (error) {
    await service.stop();
    throw error;
  }
  return service;
}
