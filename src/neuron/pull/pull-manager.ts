/**
 * The neuron's pulls: the one owner of their state. A pull resolves its
 * source against the hub's listing (which files, how big, their checksums),
 * refuses when the disk cannot hold them, then downloads each missing file.
 *
 * Single flight twice over: the same source pulled again while its pull runs
 * joins that pull, and two pulls that need the same file (a tag and its file
 * name) share one download. A finished pull's files are in the models
 * directory, so `/models` lists them at once; nothing restarts.
 *
 * States: resolving → downloading → verifying → done, or → failed from any.
 */
import { stat, statfs } from "node:fs/promises";
import { formatBytes } from "../../core/config/parse-size.ts";
import { CortexError, errorMessage, toCortexError } from "../../core/errors.ts";
import { logger } from "../../core/logger.ts";
import {
  formatModelSource,
  type ModelSource,
  parseModelSource,
  pulledPath,
  selectGguf,
} from "../../core/model-source.ts";
import type { PullState, PullStatus } from "../../core/pull-api.ts";
import type { ModelsDir } from "../models-dir.ts";
import { downloadFile, partPath } from "./download-file.ts";
import type { HubClient, HubFile } from "./hub-client.ts";

const log = logger("pull");

/** Metric hooks (neuron-metrics.ts). */
export interface PullObserver {
  bytesReceived(bytes: number): void;
  pullFinished(outcome: "downloaded" | "present" | "failed", seconds: number): void;
}

export interface PullManagerOptions {
  hub: HubClient;
  modelsDir: ModelsDir;
  /** Bytes a pull must leave free on the models directory's disk (`neuron.pull_keep_free`). */
  keepFreeBytes: number;
  observer?: PullObserver;
  /** Per-file tries and the delay between them (download-file.ts). */
  attempts?: number;
  retryDelayMs?: number;
  /** How many finished pulls `/models/pulls` keeps showing. */
  keepFinished?: number;
}

interface FileDownload {
  done: number;
  total: number;
  /** Every pull waiting on this file (their progress moves with it). */
  pulls: Set<Pull>;
  promise: Promise<void>;
}

interface PullFileEntry {
  hub: HubFile;
  /** Relative to the models directory. */
  file: string;
  present: boolean;
  download?: FileDownload;
}

interface Pull {
  id: string;
  source: ModelSource;
  spec: string;
  state: PullState;
  model?: string;
  files: PullFileEntry[];
  current?: string;
  startedAt: number;
  finishedAt?: number;
  error?: string;
  /** (time ms, bytes done) samples of the last few seconds, for the rate. */
  samples: Array<[number, number]>;
  finished: Promise<PullStatus>;
}

const RATE_WINDOW_MS = 5000;

export class PullManager {
  readonly #options: PullManagerOptions;
  readonly #pulls = new Map<string, Pull>();
  /** Absolute destination path → its one download. */
  readonly #downloads = new Map<string, FileDownload>();
  readonly #listeners = new Set<(status: PullStatus) => void>();
  readonly #abort = new AbortController();

  constructor(options: PullManagerOptions) {
    this.#options = options;
  }

  /** Every pull in flight, then the latest finished ones. */
  list(): PullStatus[] {
    return [...this.#pulls.values()].map((pull) => this.#status(pull));
  }

  /** Called on every change of any pull (each chunk received, each state change). */
  onChange(listener: (status: PullStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Whether a pull is writing this file (relative to the models directory) now. */
  isPulling(file: string): boolean {
    const path = this.#options.modelsDir.resolveFile(file);
    return path !== undefined && this.#downloads.has(path);
  }

  /** Resolves when the pull has finished, with its final status (done or failed). */
  finished(id: string): Promise<PullStatus> {
    const pull = this.#pulls.get(id);
    if (pull === undefined) throw new CortexError("not_found", `no pull ${JSON.stringify(id)}`);
    return pull.finished;
  }

  /**
   * Starts a pull, or joins the one in flight for the same source. Resolves
   * once the files are known and the disk has room (the download goes on);
   * rejects when the source names nothing, the hub refuses, or space is short.
   */
  async start(spec: string): Promise<PullStatus> {
    const source = parseModelSource(spec);
    const canonical = formatModelSource(source);
    const running = [...this.#pulls.values()].find(
      (pull) => pull.spec === canonical && pull.state !== "done" && pull.state !== "failed",
    );
    if (running !== undefined) return this.#status(running);
    let settle: (status: PullStatus) => void = () => {};
    const pull: Pull = {
      id: `pull-${crypto.randomUUID().slice(0, 8)}`,
      source,
      spec: canonical,
      state: "resolving",
      files: [],
      startedAt: Date.now(),
      samples: [],
      finished: new Promise((resolve) => {
        settle = resolve;
      }),
    };
    this.#pulls.set(pull.id, pull);
    this.#trim();
    this.#emit(pull);
    const started = performance.now();
    try {
      await this.#resolve(pull);
    } catch (error) {
      this.#fail(pull, error, started);
      settle(this.#status(pull));
      throw error;
    }
    pull.state = "downloading";
    this.#emit(pull);
    void this.#run(pull, started).then(settle);
    return this.#status(pull);
  }

  /** Stops every download (the partial files stay, and resume at the next pull). */
  close(): void {
    this.#abort.abort(new CortexError("unavailable", "the neuron is shutting down"));
  }

  async #resolve(pull: Pull): Promise<void> {
    const { hub, modelsDir } = this.#options;
    const listing = await hub.listFiles(pull.source.repo, pull.source.revision, this.#abort.signal);
    const selection = selectGguf(
      listing.map((file) => file.path),
      pull.source,
    );
    const wanted = [...selection.parts, ...(selection.mmproj === undefined ? [] : [selection.mmproj])];
    let needed = 0;
    for (const path of wanted) {
      const hubFile = listing.find((file) => file.path === path);
      if (hubFile === undefined) throw new CortexError("internal", `${path} vanished from the listing`);
      const file = pulledPath(pull.source, path);
      const dest = modelsDir.resolveFile(file);
      if (dest === undefined)
        throw new CortexError("invalid_request", `${file} would land outside the models directory`);
      const present = (await sizeOf(dest)) === hubFile.size && !this.#downloads.has(dest);
      if (!present && !this.#downloads.has(dest))
        needed += hubFile.size - Math.min(hubFile.size, (await sizeOf(partPath(dest))) ?? 0);
      pull.files.push({ hub: hubFile, file, present });
    }
    pull.model = pulledPath(pull.source, selection.parts[0] ?? "");
    await this.#checkSpace(pull, needed);
  }

  async #checkSpace(pull: Pull, needed: number): Promise<void> {
    if (needed === 0) return;
    const root = this.#options.modelsDir.root;
    const fs = await statfs(root);
    const free = fs.bavail * fs.bsize;
    // Downloads already running will take their remaining bytes too.
    let pending = 0;
    for (const download of this.#downloads.values()) pending += download.total - download.done;
    const keep = this.#options.keepFreeBytes;
    if (free - pending - needed < keep)
      throw new CortexError(
        "insufficient_storage",
        `not enough disk space in ${root} to pull ${pull.spec}: it needs ${formatBytes(needed)}, ${formatBytes(free)} is free${pending > 0 ? ` (${formatBytes(pending)} of it promised to pulls under way)` : ""}${keep > 0 ? ` and neuron.pull_keep_free keeps ${formatBytes(keep)}` : ""}`,
        { details: { needBytes: needed, freeBytes: free, keepFreeBytes: keep, pendingBytes: pending } },
      );
  }

  async #run(pull: Pull, started: number): Promise<PullStatus> {
    try {
      for (const entry of pull.files) {
        if (entry.present) continue;
        pull.current = entry.file;
        pull.state = "downloading";
        entry.download = this.#download(pull, entry);
        this.#emit(pull);
        await entry.download.promise;
      }
      pull.current = undefined;
      pull.state = "done";
      pull.finishedAt = Date.now();
      const downloaded = pull.files.some((entry) => !entry.present);
      this.#options.observer?.pullFinished(
        downloaded ? "downloaded" : "present",
        (performance.now() - started) / 1000,
      );
      log.info(
        `pulled ${pull.spec} → ${pull.model} (${formatBytes(total(pull))}${downloaded ? "" : ", already present"}) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
      this.#emit(pull);
    } catch (error) {
      this.#fail(pull, error, started);
    }
    return this.#status(pull);
  }

  /** The one download of a file, shared by every pull that needs it. */
  #download(pull: Pull, entry: PullFileEntry): FileDownload {
    const dest = this.#options.modelsDir.resolveFile(entry.file) as string;
    const existing = this.#downloads.get(dest);
    if (existing !== undefined) {
      existing.pulls.add(pull);
      return existing;
    }
    const download: FileDownload = {
      done: 0,
      total: entry.hub.size,
      pulls: new Set([pull]),
      promise: Promise.resolve(),
    };
    const emitAll = () => {
      for (const each of download.pulls) this.#emit(each);
    };
    download.promise = downloadFile(
      { repo: pull.source.repo, revision: pull.source.revision, file: entry.hub, dest },
      {
        hub: this.#options.hub,
        signal: this.#abort.signal,
        ...(this.#options.attempts === undefined ? {} : { attempts: this.#options.attempts }),
        ...(this.#options.retryDelayMs === undefined ? {} : { retryDelayMs: this.#options.retryDelayMs }),
        onProgress: (done, received) => {
          download.done = done;
          if (received > 0) this.#options.observer?.bytesReceived(received);
          emitAll();
        },
        onVerifying: () => {
          for (const each of download.pulls) each.state = "verifying";
          emitAll();
        },
      },
    ).finally(() => this.#downloads.delete(dest));
    this.#downloads.set(dest, download);
    return download;
  }

  #fail(pull: Pull, error: unknown, started: number): void {
    const cortex = toCortexError(error);
    pull.state = "failed";
    pull.current = undefined;
    pull.finishedAt = Date.now();
    pull.error = cortex.message;
    this.#options.observer?.pullFinished("failed", (performance.now() - started) / 1000);
    // A source that names nothing is the caller's mistake (WARN); a download that failed is the node's (ERROR).
    if (cortex.status < 500) log.warn(`pull of ${pull.spec} refused: ${errorMessage(error)}`);
    else log.error(`pull of ${pull.spec} failed: ${errorMessage(error)}`);
    this.#emit(pull);
  }

  #status(pull: Pull): PullStatus {
    const files = pull.files.map((entry) => ({
      file: entry.file,
      bytesTotal: entry.hub.size,
      bytesDone: entry.present
        ? entry.hub.size
        : pull.state === "done"
          ? entry.hub.size
          : (entry.download?.done ?? 0),
      present: entry.present,
    }));
    const bytesDone = files.reduce((sum, file) => sum + file.bytesDone, 0);
    const bytesTotal = total(pull);
    const rate = pull.state === "downloading" || pull.state === "verifying" ? rateOf(pull, bytesDone) : 0;
    return {
      id: pull.id,
      source: pull.spec,
      state: pull.state,
      ...(pull.model === undefined ? {} : { model: pull.model }),
      files,
      ...(pull.current === undefined ? {} : { current: pull.current }),
      bytesDone,
      bytesTotal,
      rate,
      ...(rate > 0 ? { etaS: Math.ceil((bytesTotal - bytesDone) / rate) } : {}),
      startedAt: pull.startedAt,
      ...(pull.finishedAt === undefined ? {} : { finishedAt: pull.finishedAt }),
      ...(pull.error === undefined ? {} : { error: pull.error }),
    };
  }

  #emit(pull: Pull): void {
    const status = this.#status(pull);
    for (const listener of this.#listeners) listener(status);
  }

  /** Forgets the oldest finished pulls beyond `keepFinished`. */
  #trim(): void {
    const keep = this.#options.keepFinished ?? 20;
    const finished = [...this.#pulls.values()].filter((pull) => pull.finishedAt !== undefined);
    for (const pull of finished.slice(0, Math.max(0, finished.length - keep))) this.#pulls.delete(pull.id);
  }
}

function total(pull: Pull): number {
  return pull.files.reduce((sum, entry) => sum + entry.hub.size, 0);
}

/** Bytes per second over the last RATE_WINDOW_MS, from samples taken as progress arrives. */
function rateOf(pull: Pull, bytesDone: number): number {
  const now = performance.now();
  const last = pull.samples.at(-1);
  if (last === undefined || last[1] !== bytesDone) pull.samples.push([now, bytesDone]);
  while (pull.samples.length > 2 && now - (pull.samples[0]?.[0] ?? now) > RATE_WINDOW_MS)
    pull.samples.shift();
  const first = pull.samples[0];
  if (first === undefined || now - first[0] <= 0) return 0;
  return Math.max(0, Math.round(((bytesDone - first[1]) * 1000) / (now - first[0])));
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}
