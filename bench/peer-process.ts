/**
 * The benchmark peer, node-llama-cpp, in a Node.js child process
 * (bench/peer/peer-decode.mjs). Its umbrella package cannot live in the main
 * lockfile (its macOS/Windows optional packages are not served), so it is
 * installed into bench/peer/ on demand, without optional packages: it then
 * finds the prebuilt libllama of the already-installed
 * @node-llama-cpp/linux-x64 by walking up to the root node_modules.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { consola } from "consola";
import { z } from "zod";

export const PEER_PACKAGE = "node-llama-cpp";
export const PEER_VERSION = "3.22.1";
const PEER_DIR = join(import.meta.dir, "peer");

/** Never download or compile llama.cpp: the peer must run the prebuilt binaries we also use. */
const PEER_ENV = {
  NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true",
  NODE_LLAMA_CPP_GPU: "false",
  NODE_LLAMA_CPP_LOG_LEVEL: "warn",
};

function installedVersion(): string | undefined {
  const manifest = join(PEER_DIR, "node_modules", PEER_PACKAGE, "package.json");
  if (!existsSync(manifest)) return undefined;
  return z.object({ version: z.string() }).parse(JSON.parse(readFileSync(manifest, "utf8"))).version;
}

/** Installs node-llama-cpp@PEER_VERSION into bench/peer/node_modules unless it is there already. */
export async function ensurePeerInstalled(): Promise<void> {
  if (installedVersion() === PEER_VERSION) return;
  consola.start(`installing ${PEER_PACKAGE}@${PEER_VERSION} into bench/peer (outside the main lockfile)`);
  const npm = Bun.spawn(
    [
      "npm",
      "install",
      "--no-save",
      "--no-package-lock",
      "--omit=optional",
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      `${PEER_PACKAGE}@${PEER_VERSION}`,
    ],
    { cwd: PEER_DIR, env: { ...process.env, ...PEER_ENV }, stdout: "inherit", stderr: "inherit" },
  );
  if ((await npm.exited) !== 0 || installedVersion() !== PEER_VERSION)
    throw new Error(`npm install ${PEER_PACKAGE}@${PEER_VERSION} in ${PEER_DIR} failed`);
}

const Failure = z.object({ ok: z.literal(false), error: z.string() });
const Loaded = z.object({ ok: z.literal(true), systemInfo: z.string(), contextSize: z.number() });
const StreamRun = z.object({
  promptTokens: z.number(),
  tokens: z.number(),
  /** First generated token to last. */
  decodeMs: z.number(),
  text: z.string(),
});
const Ran = z.object({
  ok: z.literal(true),
  /** Start of the run to the last token of the last stream. */
  wallMs: z.number(),
  streams: z.array(StreamRun).min(1),
});
export type PeerStreamRun = z.infer<typeof StreamRun>;
export type PeerRun = Omit<z.infer<typeof Ran>, "ok">;

/** One node-llama-cpp process holding one model and one context of `sequences` sequences. */
export class PeerProcess {
  readonly #child: Bun.Subprocess<"pipe", "pipe", "inherit">;
  readonly #lines: AsyncIterator<string>;

  private constructor(child: Bun.Subprocess<"pipe", "pipe", "inherit">) {
    this.#child = child;
    this.#lines = readLines(child.stdout)[Symbol.asyncIterator]();
  }

  static async start(options: {
    model: string;
    threads: number;
    /** Tokens per sequence. */
    contextSize: number;
    sequences?: number;
  }): Promise<PeerProcess & { systemInfo: string }> {
    const child = Bun.spawn(["node", join(PEER_DIR, "peer-decode.mjs")], {
      cwd: PEER_DIR,
      env: { ...process.env, ...PEER_ENV },
      stdin: "pipe",
      stdout: "pipe",
      stderr: "inherit",
    });
    const peer = new PeerProcess(child);
    const loaded = Loaded.parse(await peer.#call({ cmd: "load", ...options }));
    return Object.assign(peer, { systemInfo: loaded.systemInfo });
  }

  /**
   * Greedy decode of exactly `tokens` tokens after `prompt` from an empty KV
   * cache, on `streams` sequences at once.
   */
  async run(prompt: string, tokens: number, streams = 1): Promise<PeerRun> {
    const { ok: _ok, ...run } = Ran.parse(await this.#call({ cmd: "run", prompt, tokens, streams }));
    return run;
  }

  /** One stream: its own numbers. */
  async runOne(prompt: string, tokens: number): Promise<PeerStreamRun> {
    return (await this.run(prompt, tokens, 1)).streams[0]!;
  }

  async close(): Promise<void> {
    this.#child.stdin.write(`${JSON.stringify({ cmd: "exit" })}\n`);
    await this.#child.stdin.end();
    const timer = setTimeout(() => this.#child.kill(), 5000);
    await this.#child.exited;
    clearTimeout(timer);
  }

  async #call(command: Record<string, unknown>): Promise<unknown> {
    this.#child.stdin.write(`${JSON.stringify(command)}\n`);
    await this.#child.stdin.flush();
    const next = await this.#lines.next();
    if (next.done)
      throw new Error(`the peer exited (code ${await this.#child.exited}) during ${command.cmd}`);
    const answer: unknown = JSON.parse(next.value);
    const failure = Failure.safeParse(answer);
    if (failure.success) throw new Error(`peer ${command.cmd} failed: ${failure.data.error}`);
    return answer;
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line !== "") yield line;
      newline = buffered.indexOf("\n");
    }
  }
}
