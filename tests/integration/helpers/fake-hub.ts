/**
 * A Hugging Face Hub on loopback, for model pull tests. It reproduces these
 * documented behaviours of the real hub (huggingface_hub's `list_repo_tree`,
 * `hf_hub_download` and `hf_raise_for_status` rely on each):
 *
 * - `GET /api/models/{org}/{repo}/tree/{revision}?recursive=true` answers a
 *   JSON array of `{type: "file", oid, size, path, lfs?}` and
 *   `{type: "directory", oid, size: 0, path}` entries; `lfs` is
 *   `{oid: <sha256 of the content>, size, pointerSize}` for LFS files (every
 *   `.gguf`), and `oid` is the git blob id (sha1 of `blob <size>\0<content>`).
 *   Listings longer than a page are paginated with
 *   `Link: <next url>; rel="next"`.
 * - `GET /{org}/{repo}/resolve/{revision}/{path}` answers an LFS file with a
 *   302 to a CDN URL on another origin (here another port, `/cdn/<sha256>`;
 *   like the real CDN's signed URL it needs no token), with `X-Repo-Commit`,
 *   `X-Linked-Etag` and `X-Linked-Size`; a small file is served directly.
 * - The CDN answers `Range: bytes=N-` (or `N-M`) with 206 and
 *   `Content-Range: bytes N-M/size`, a range past the end with 416 and
 *   `Content-Range: bytes *\/size`, and advertises `Accept-Ranges: bytes`.
 * - A gated repository answers 401 with `X-Error-Code: GatedRepo` without a
 *   token; a missing repository answers 401 `RepoNotFound` anonymously and 404
 *   `RepoNotFound` with a token; a missing file 404 `EntryNotFound`; a
 *   missing revision 404 `RevisionNotFound`. Each with `X-Error-Message`.
 *
 * Failure modes the tests switch on: a connection dropped after N bytes of a
 * file, content that does not match its listed sha256, and bodies held back
 * until the test releases them (a slow server).
 */

interface RepoFile {
  bytes: Uint8Array;
  sha256: string;
  gitOid: string;
  lfs: boolean;
}

interface Repo {
  files: Map<string, RepoFile>;
  gated: boolean;
}

export interface HubRequest {
  path: string;
  /** For a CDN download, the `repo/path` it is for. */
  object: string | null;
  range: string | null;
  authorization: string | null;
}

export interface FakeHub {
  url: string;
  /** Every request, in order. */
  readonly requests: HubRequest[];
  addRepo(repo: string, files: Record<string, Uint8Array>, options?: { gated?: boolean }): void;
  /** The next download of this file sends `bytes` bytes, then drops the connection. */
  dropAfter(repo: string, path: string, bytes: number): void;
  /** Serves content that differs from the sha256 the listing gives. */
  corrupt(repo: string, path: string): void;
  /** Holds downloads of this file: each chunk waits for `release()`. */
  hold(repo: string, path: string): { release(): void };
  /** Tree listings are paginated this many entries a page (default 1000). */
  pageSize: number;
  /** Bytes per chunk of a download body (default 64 KiB). */
  chunkBytes: number;
  sha256(repo: string, path: string): string;
  stop(): void;
}

const TOKEN = "hf_test_token";
export const FAKE_HUB_TOKEN = TOKEN;

function hex(bytes: ArrayBuffer | Uint8Array): string {
  return Buffer.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)).toString("hex");
}

function gitBlobOid(bytes: Uint8Array): string {
  const hasher = new Bun.CryptoHasher("sha1");
  hasher.update(`blob ${bytes.byteLength}\0`);
  hasher.update(bytes);
  return hasher.digest("hex");
}

function hubError(status: number, code: string, message: string): Response {
  return new Response(JSON.stringify({ error: message }), {
    status,
    headers: { "content-type": "application/json", "x-error-code": code, "x-error-message": message },
  });
}

export function startFakeHub(): FakeHub {
  const repos = new Map<string, Repo>();
  const requests: HubRequest[] = [];
  const drops = new Map<string, number>();
  const corrupted = new Set<string>();
  const holds = new Map<string, { waiters: Array<() => void>; released: number }>();
  const state = { pageSize: 1000, chunkBytes: 64 * 1024 };
  /** LFS objects the CDN serves, by `repo/path` (the signed URL names both). */
  const bySha = new Map<string, { key: string; file: RepoFile }>();

  const authorized = (request: Request) => request.headers.get("authorization") === `Bearer ${TOKEN}`;

  /** The repo, or the error the hub answers for it. */
  const access = (request: Request, name: string): Repo | Response => {
    const repo = repos.get(name);
    if (repo === undefined)
      return authorized(request)
        ? hubError(404, "RepoNotFound", "Repository not found")
        : hubError(401, "RepoNotFound", "Invalid username or password.");
    if (repo.gated && !authorized(request))
      return hubError(
        401,
        "GatedRepo",
        `Access to model ${name} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
      );
    return repo;
  };

  const tree = (request: Request, url: URL, name: string, revision: string): Response => {
    const repo = access(request, name);
    if (repo instanceof Response) return repo;
    if (revision !== "main") return hubError(404, "RevisionNotFound", `Invalid rev id: ${revision}`);
    const entries: unknown[] = [];
    const dirs = new Set<string>();
    for (const [path, file] of [...repo.files].sort(([a], [b]) => a.localeCompare(b))) {
      const parts = path.split("/");
      for (let i = 1; i < parts.length; i++) {
        const dir = parts.slice(0, i).join("/");
        if (!dirs.has(dir)) {
          dirs.add(dir);
          entries.push({ type: "directory", oid: "0".repeat(40), size: 0, path: dir });
        }
      }
      entries.push({
        type: "file",
        oid: file.gitOid,
        size: file.bytes.byteLength,
        path,
        ...(file.lfs ? { lfs: { oid: file.sha256, size: file.bytes.byteLength, pointerSize: 134 } } : {}),
      });
    }
    const cursor = Number(url.searchParams.get("cursor") ?? "0");
    const page = entries.slice(cursor, cursor + state.pageSize);
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (cursor + state.pageSize < entries.length) {
      const next = new URL(url);
      next.searchParams.set("cursor", String(cursor + state.pageSize));
      headers.link = `<${next.toString()}>; rel="next"`;
    }
    return new Response(JSON.stringify(page), { headers });
  };

  const body = (key: string, file: RepoFile, start: number, end: number): ReadableStream<Uint8Array> => {
    let content = file.bytes;
    if (corrupted.has(key)) {
      content = new Uint8Array(file.bytes);
      content[content.length - 1] = (content.at(-1) ?? 0) ^ 0xff;
    }
    const dropAt = drops.get(key);
    drops.delete(key);
    let position = start;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        const hold = holds.get(key);
        if (hold !== undefined) {
          if (hold.released > 0) hold.released--;
          else await new Promise<void>((resolve) => hold.waiters.push(resolve));
        }
        if (position > end) return controller.close();
        // The body ends short of its Content-Length: the connection closes mid-file.
        if (dropAt !== undefined && position >= dropAt) return controller.close();
        let stop = Math.min(end + 1, position + state.chunkBytes);
        if (dropAt !== undefined && stop > dropAt) stop = dropAt;
        if (stop > position) controller.enqueue(content.slice(position, stop));
        position = stop;
        if (position > end) controller.close();
      },
    });
  };

  const cdn = (request: Request, sha: string, key: string): Response => {
    const entry = bySha.get(key);
    if (entry === undefined || entry.file.sha256 !== sha)
      return new Response("no such object", { status: 404 });
    const size = entry.file.bytes.byteLength;
    const range = request.headers.get("range");
    const common = { "accept-ranges": "bytes", etag: `"${sha}"`, "content-type": "application/octet-stream" };
    if (range === null)
      return new Response(body(entry.key, entry.file, 0, size - 1), {
        headers: { ...common, "content-length": String(size) },
      });
    const match = /^bytes=(\d+)-(\d*)$/.exec(range);
    const start = Number(match?.[1] ?? Number.NaN);
    const end = match?.[2] ? Math.min(Number(match[2]), size - 1) : size - 1;
    if (match === null || start >= size || start > end)
      return new Response(null, { status: 416, headers: { "content-range": `bytes */${size}` } });
    return new Response(body(entry.key, entry.file, start, end), {
      status: 206,
      headers: {
        ...common,
        "content-length": String(end - start + 1),
        "content-range": `bytes ${start}-${end}/${size}`,
      },
    });
  };

  const resolve = (request: Request, name: string, revision: string, path: string): Response => {
    const repo = access(request, name);
    if (repo instanceof Response) return repo;
    if (revision !== "main") return hubError(404, "RevisionNotFound", `Invalid rev id: ${revision}`);
    const file = repo.files.get(path);
    if (file === undefined) return hubError(404, "EntryNotFound", `${path} does not exist on "${revision}"`);
    const commit = "c0ffee".padEnd(40, "0");
    if (!file.lfs)
      return new Response(file.bytes, {
        headers: {
          etag: `"${file.gitOid}"`,
          "x-repo-commit": commit,
          "content-length": String(file.bytes.byteLength),
        },
      });
    return new Response(null, {
      status: 302,
      headers: {
        location: `${cdnServer.url.origin}/cdn/${file.sha256}?k=${encodeURIComponent(`${name}/${path}`)}`,
        "x-repo-commit": commit,
        "x-linked-etag": `"${file.sha256}"`,
        "x-linked-size": String(file.bytes.byteLength),
      },
    });
  };

  const record = (request: Request, url: URL, path: string) =>
    requests.push({
      path,
      object: url.searchParams.get("k"),
      range: request.headers.get("range"),
      authorization: request.headers.get("authorization"),
    });

  // The CDN is another origin (another port), as the real one is another host.
  const cdnServer = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    fetch(request) {
      const url = new URL(request.url);
      const path = decodeURIComponent(url.pathname);
      record(request, url, path);
      const match = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
      if (match) return cdn(request, match[1] ?? "", url.searchParams.get("k") ?? "");
      return new Response("not found", { status: 404 });
    },
  });

  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    fetch(request) {
      const url = new URL(request.url);
      const path = decodeURIComponent(url.pathname);
      record(request, url, path);
      let match = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(path);
      if (match) return tree(request, url, match[1] ?? "", match[2] ?? "");
      match = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
      if (match) return resolve(request, match[1] ?? "", match[2] ?? "", match[3] ?? "");
      return new Response("not found", { status: 404 });
    },
  });

  const keyOf = (repo: string, path: string) => `${repo}/${path}`;
  const fileOf = (repo: string, path: string): RepoFile => {
    const file = repos.get(repo)?.files.get(path);
    if (file === undefined) throw new Error(`fake hub: no ${repo}/${path}`);
    return file;
  };

  return {
    url: server.url.origin,
    requests,
    get pageSize() {
      return state.pageSize;
    },
    set pageSize(value: number) {
      state.pageSize = value;
    },
    get chunkBytes() {
      return state.chunkBytes;
    },
    set chunkBytes(value: number) {
      state.chunkBytes = value;
    },
    addRepo(name, files, options = {}) {
      const repo: Repo = { files: new Map(), gated: options.gated ?? false };
      for (const [path, bytes] of Object.entries(files)) {
        const file: RepoFile = {
          bytes,
          sha256: hex(new Bun.CryptoHasher("sha256").update(bytes).digest()),
          gitOid: gitBlobOid(bytes),
          lfs: path.endsWith(".gguf"),
        };
        repo.files.set(path, file);
        if (file.lfs) bySha.set(keyOf(name, path), { key: keyOf(name, path), file });
      }
      repos.set(name, repo);
    },
    dropAfter(repo, path, bytes) {
      drops.set(keyOf(repo, path), bytes);
    },
    corrupt(repo, path) {
      corrupted.add(keyOf(repo, path));
    },
    hold(repo, path) {
      const hold = { waiters: [] as Array<() => void>, released: 0 };
      holds.set(keyOf(repo, path), hold);
      return {
        release() {
          const waiter = hold.waiters.shift();
          if (waiter) waiter();
          else hold.released++;
        },
      };
    },
    sha256(repo, path) {
      return fileOf(repo, path).sha256;
    },
    stop() {
      server.stop(true);
      cdnServer.stop(true);
    },
  };
}
