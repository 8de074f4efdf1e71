/**
 * Downloads one file of a hub repository into the models directory:
 * streamed to a hidden temporary name beside its destination (the models
 * directory skips dot-files), hashed while it streams, renamed into place only
 * when complete and verified. A connection that breaks resumes with a Range
 * request; a partial file left by an earlier run resumes too, as long as the
 * hub still describes the file the same way (kept in a small sidecar).
 */
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { CortexError, errorMessage } from "../../core/errors.ts";
import type { HubClient, HubFile } from "./hub-client.ts";

export interface DownloadTarget {
  repo: string;
  revision: string;
  file: HubFile;
  /** Absolute destination path. */
  dest: string;
}

export interface DownloadOptions {
  hub: HubClient;
  signal?: AbortSignal | undefined;
  /** `done` is the file's bytes on disk; `received` the bytes that just came over the network. */
  onProgress(done: number, received: number): void;
  /** Tries per file, the first included (a broken connection resumes where it broke). Default 5. */
  attempts?: number;
  /** Wait before a retry, times the retry's number. Default 1000 ms. */
  retryDelayMs?: number;
  /** Called when verification starts (hashing is done as bytes arrive; this marks the end). */
  onVerifying?(): void;
}

/** The temporary name of a download in progress. */
export function partPath(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.part`);
}

const sidecarPath = (dest: string) => `${partPath(dest)}.json`;

function expectedDigest(file: HubFile): { algorithm: "sha256" | "sha1"; hex: string } {
  return file.sha256 === undefined
    ? { algorithm: "sha1", hex: file.gitOid.toLowerCase() }
    : { algorithm: "sha256", hex: file.sha256 };
}

function newHasher(file: HubFile): Bun.CryptoHasher {
  const { algorithm } = expectedDigest(file);
  const hasher = new Bun.CryptoHasher(algorithm);
  // A git blob id hashes a header before the content.
  if (algorithm === "sha1") hasher.update(`blob ${file.size}\0`);
  return hasher;
}

/** The bytes of a partial download that may be resumed: 0 when there is none or it is for other content. */
async function resumableBytes(dest: string, file: HubFile): Promise<number> {
  const identity = JSON.stringify({ size: file.size, digest: expectedDigest(file).hex });
  let size = 0;
  try {
    const [sidecar, info] = await Promise.all([readFile(sidecarPath(dest), "utf8"), stat(partPath(dest))]);
    if (sidecar === identity && info.size <= file.size) size = info.size;
  } catch {
    // no partial download, or no sidecar: start afresh
  }
  if (size === 0) {
    await rm(partPath(dest), { force: true });
    await writeFile(sidecarPath(dest), identity);
  }
  return size;
}

async function hashExisting(path: string, hasher: Bun.CryptoHasher, signal?: AbortSignal): Promise<void> {
  for await (const chunk of Bun.file(path).stream()) {
    signal?.throwIfAborted();
    hasher.update(chunk);
  }
}

function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(timer);
      reject(signal?.reason);
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** First byte of a 206's `Content-Range: bytes first-last/total`. */
function rangeStart(header: string | null): number | undefined {
  const match = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header?.trim() ?? "");
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

export async function downloadFile(target: DownloadTarget, options: DownloadOptions): Promise<void> {
  const { file, dest } = target;
  const attempts = options.attempts ?? 5;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  await mkdir(dirname(dest), { recursive: true });
  const part = partPath(dest);
  let hasher = newHasher(file);
  let offset = await resumableBytes(dest, file);
  if (offset > 0) await hashExisting(part, hasher, options.signal);
  options.onProgress(offset, 0);
  let failures = 0;
  let lastFailure = "";
  while (offset < file.size || (offset === 0 && file.size === 0)) {
    options.signal?.throwIfAborted();
    try {
      const response = await options.hub.download(
        target.repo,
        target.revision,
        file.path,
        offset,
        options.signal,
      );
      if (offset > 0 && response.status === 200) {
        // The server ignored the range: take the whole file from the start.
        hasher = newHasher(file);
        offset = 0;
        await rm(part, { force: true });
      } else if (offset > 0 && rangeStart(response.headers.get("content-range")) !== offset) {
        await response.body?.cancel();
        throw new CortexError(
          "upstream_error",
          `the hub answered a range request for ${file.path} from byte ${offset} with Content-Range ${JSON.stringify(response.headers.get("content-range"))}`,
        );
      }
      const handle = await open(part, offset === 0 ? "w" : "a");
      try {
        if (response.body === null) throw new Error("the hub sent no body");
        for await (const chunk of response.body) {
          if (offset + chunk.byteLength > file.size)
            throw new CortexError(
              "upstream_error",
              `the hub sent more than the ${file.size} bytes it listed for ${file.path}`,
            );
          hasher.update(chunk);
          await handle.write(chunk);
          offset += chunk.byteLength;
          options.onProgress(offset, chunk.byteLength);
        }
      } finally {
        await handle.close();
      }
      if (file.size === 0) break;
      if (offset < file.size) throw new Error(`the connection ended at byte ${offset} of ${file.size}`);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      // The hub's own refusals (404, 401, a bad range) will not change on a retry.
      if (error instanceof CortexError) throw error;
      failures++;
      lastFailure = errorMessage(error);
      if (failures >= attempts)
        throw new CortexError(
          "upstream_error",
          `downloading ${file.path} failed ${failures} times, last at byte ${offset} of ${file.size}: ${lastFailure}; pull again to resume`,
          { cause: error },
        );
      await abortableDelay(retryDelayMs * failures, options.signal);
    }
  }
  options.onVerifying?.();
  const expected = expectedDigest(file);
  const actual = hasher.digest("hex");
  if (actual !== expected.hex) {
    await rm(part, { force: true });
    await rm(sidecarPath(dest), { force: true });
    throw new CortexError(
      "upstream_error",
      `checksum mismatch for ${file.path}: the hub lists ${expected.algorithm} ${expected.hex}, the download has ${actual}; the download was deleted`,
      { details: { file: file.path, expected: expected.hex, actual } },
    );
  }
  await rename(part, dest);
  await rm(sidecarPath(dest), { force: true });
}
