/**
 * The GGUF files a neuron can load: everything under its models directory,
 * with metadata read from each header (cached by path, size and mtime, so a
 * poll every two seconds does not re-read gigabytes of headers).
 */
import { readdir, stat } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import { ConfigError } from "../core/config/config-error.ts";
import { CortexError } from "../core/errors.ts";
import { logger } from "../core/logger.ts";
import type { AvailableModel } from "../core/neuron-api.ts";
import { readGgufInfo } from "./gguf/gguf-reader.ts";

const log = logger("models-dir");
const MAX_DEPTH = 3;

interface CacheEntry {
  key: string;
  model: AvailableModel | undefined;
}

export class ModelsDir {
  readonly root: string;
  readonly #cache = new Map<string, CacheEntry>();

  constructor(root: string) {
    this.root = resolve(root);
  }

  /**
   * Resolves a file named in a load request to an absolute path inside the
   * models directory, or undefined when it is outside it (no `../` escapes).
   */
  resolveFile(file: string): string | undefined {
    const path = resolve(this.root, file);
    return path === this.root || !path.startsWith(this.root + sep) ? undefined : path;
  }

  /**
   * Checks the directory at start: a missing or unreadable one throws (a
   * configured path that is wrong is an operator's mistake, not an empty
   * fleet); one without a GGUF file warns. Returns the number of files.
   */
  async check(setting: string): Promise<number> {
    const where = `${setting} ${JSON.stringify(this.root)}`;
    const expected =
      "expected a readable directory of .gguf files (or leave it unset to serve the demo model)";
    try {
      const info = await stat(this.root);
      if (!info.isDirectory()) throw new ConfigError([`${where}: not a directory; ${expected}`]);
      await readdir(this.root);
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      const code = (error as { code?: unknown }).code;
      const why =
        code === "ENOENT"
          ? "no such directory"
          : code === "EACCES"
            ? "permission denied"
            : String(code ?? error);
      throw new ConfigError([`${where}: ${why}; ${expected}`]);
    }
    const files = await this.#scan(this.root, 0);
    if (files.length === 0)
      log.warn(`${where} holds no .gguf files: nothing can be loaded until one is added`);
    return files.length;
  }

  async list(): Promise<AvailableModel[]> {
    const files = await this.#scan(this.root, 0);
    const models = await Promise.all(files.map((path) => this.#describe(path)));
    return models.filter((model): model is AvailableModel => model !== undefined);
  }

  async #scan(dir: string, depth: number): Promise<string[]> {
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return [];
    }
    const out: string[] = [];
    for (const entry of entries) {
      if (entry.name.startsWith(".")) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory() && depth < MAX_DEPTH) out.push(...(await this.#scan(path, depth + 1)));
      else if ((entry.isFile() || entry.isSymbolicLink()) && entry.name.endsWith(".gguf")) out.push(path);
    }
    return out.sort();
  }

  async #describe(path: string): Promise<AvailableModel | undefined> {
    let key: string;
    let size: number;
    try {
      const info = await stat(path);
      key = `${info.size}:${info.mtimeMs}`;
      size = info.size;
    } catch {
      return undefined;
    }
    const cached = this.#cache.get(path);
    if (cached?.key === key) return cached.model;
    let model: AvailableModel | undefined;
    try {
      const info = await readGgufInfo(path);
      model = {
        file: relative(this.root, path),
        sizeBytes: info.fileSize,
        architecture: info.architecture ?? "unknown",
        ...(info.name === undefined ? {} : { name: info.name }),
        parameterCount: info.parameterCount,
        quantization: info.quantization,
        ...(info.contextLength === undefined ? {} : { contextLength: info.contextLength }),
        hasChatTemplate: info.hasChatTemplate,
      };
    } catch (error) {
      const problem =
        error instanceof CortexError
          ? error
          : new CortexError("invalid_model_file", `cannot read GGUF file ${path}: ${String(error)}`);
      log.warn(`unusable model file ${path}: ${problem.message}`);
      // Listed with its problem, so the gateway can say why instead of "no such file".
      model = {
        file: relative(this.root, path),
        sizeBytes: size,
        architecture: "unknown",
        hasChatTemplate: false,
        problem: problem.message,
      };
    }
    this.#cache.set(path, { key, model });
    return model;
  }
}
