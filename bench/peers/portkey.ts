/**
 * The gateway benchmark's peer @portkey-ai/gateway (Portkey's open-source AI
 * gateway: Hono on @hono/node-server), installed with npm into
 * .cache/bench-peers/portkey-<version>/ (outside the main lockfile; nothing
 * else of the project needs it) and started as its package's `bin` does,
 * headless (no console UI), with the fake neuron as an OpenAI provider on a
 * custom host named per request (`x-portkey-provider`, `x-portkey-custom-host`:
 * how its docs route to a self-hosted OpenAI-compatible server).
 *
 * It runs under Bun: under the Node here (20.20) its streaming path fails on
 * every request ("TypeError: immutable" appending its headers to the
 * upstream's response), while Bun runs both paths. Its `/v1/messages` route
 * serves only providers that speak Anthropic's API ("messages is not
 * supported by openai"), so it has no Anthropic-in/OpenAI-out row.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { consola } from "consola";
import { z } from "zod";
import { chatWorks, freePort, type Service, serviceWhenReady, tempDir } from "../bench-services.ts";
import { FAKE_MODEL } from "../fake-upstream.ts";

export const PORTKEY_PACKAGE = "@portkey-ai/gateway";
export const PORTKEY_VERSION = "1.15.2";
const INSTALL_DIR = join(import.meta.dir, "..", "..", ".cache", "bench-peers", `portkey-${PORTKEY_VERSION}`);
const PACKAGE_DIR = join(INSTALL_DIR, "node_modules", "@portkey-ai", "gateway");
const ENTRY = join(PACKAGE_DIR, "build", "start-server.js");

function installedVersion(): string | undefined {
  const manifest = join(PACKAGE_DIR, "package.json");
  if (!existsSync(manifest)) return undefined;
  return z.object({ version: z.string() }).parse(JSON.parse(readFileSync(manifest, "utf8"))).version;
}

/** Installs PORTKEY_PACKAGE@PORTKEY_VERSION into .cache/bench-peers unless it is there already. */
export async function ensurePortkeyInstalled(): Promise<void> {
  if (installedVersion() === PORTKEY_VERSION && existsSync(ENTRY)) return;
  consola.start(`installing ${PORTKEY_PACKAGE}@${PORTKEY_VERSION} into ${INSTALL_DIR}`);
  mkdirSync(INSTALL_DIR, { recursive: true });
  writeFileSync(join(INSTALL_DIR, "package.json"), '{ "private": true }\n');
  const npm = Bun.spawn(
    [
      "npm",
      "install",
      "--no-save",
      "--no-package-lock",
      "--omit=dev",
      // Its postinstall runs patch-package over patches it does not ship.
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      `${PORTKEY_PACKAGE}@${PORTKEY_VERSION}`,
    ],
    { cwd: INSTALL_DIR, stdout: "inherit", stderr: "inherit" },
  );
  if ((await npm.exited) !== 0 || installedVersion() !== PORTKEY_VERSION || !existsSync(ENTRY))
    throw new Error(`npm install ${PORTKEY_PACKAGE}@${PORTKEY_VERSION} in ${INSTALL_DIR} failed`);
}

/**
 * Portkey's gateway in front of `upstreamUrl` on a free port. It listens on
 * every interface (its server takes a port only); the benchmark talks to
 * 127.0.0.1.
 */
export async function startPortkey(options: { upstreamUrl: string }): Promise<Service> {
  const dir = tempDir("portkey");
  const port = freePort();
  const headers = {
    "x-portkey-provider": "openai",
    "x-portkey-custom-host": `${options.upstreamUrl}/v1`,
    authorization: "Bearer bench",
  };
  const child = Bun.spawn([process.execPath, ENTRY, `--port=${port}`, "--headless"], {
    cwd: dir,
    env: { ...process.env, HOME: dir, NODE_ENV: "production" },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "inherit",
  });
  const url = `http://127.0.0.1:${port}`;
  return serviceWhenReady(
    `portkey`,
    child,
    url,
    dir,
    () => chatWorks(url, FAKE_MODEL, headers),
    30_000,
    headers,
  );
}
