/**
 * The Hugging Face Hub's documented HTTP API, the parts a pull needs:
 *
 * - `GET {endpoint}/api/models/{repo}/tree/{revision}?recursive=true`: the
 *   repository's files as JSON entries `{type, path, size, oid, lfs?}`, where
 *   `lfs = {oid, size, pointerSize}` and `lfs.oid` is the file's sha256;
 *   long listings are paginated with a `Link: <…>; rel="next"` header.
 * - `GET {endpoint}/{repo}/resolve/{revision}/{path}`: the file, usually
 *   through a redirect to a CDN; `Range: bytes=N-` answers 206 with
 *   `Content-Range`.
 * - Errors: 401 for a gated or private repository without a token (or a
 *   missing one: the hub does not tell them apart), 403 for a token without
 *   access, 404 otherwise; `X-Error-Code` says which (`GatedRepo`,
 *   `RepoNotFound`, `RevisionNotFound`, `EntryNotFound`) and
 *   `X-Error-Message` why.
 *
 * The token goes to the hub's own origin only, never to the CDN a download
 * is redirected to (its URL is signed).
 */
import { z } from "zod";
import { CortexError } from "../../core/errors.ts";

export interface HubFile {
  path: string;
  size: number;
  /** sha256 of the content, for LFS files (every GGUF on the hub). */
  sha256?: string;
  /** The git blob id (sha1 of `blob <size>\0<content>`), for files stored in git itself. */
  gitOid: string;
}

const TreeEntry = z.looseObject({
  type: z.string(),
  path: z.string(),
  size: z.number().nonnegative().optional(),
  oid: z.string().optional(),
  lfs: z.looseObject({ oid: z.string(), size: z.number().nonnegative() }).nullish(),
});

export interface HubClientOptions {
  /** `HF_ENDPOINT`, default https://huggingface.co. */
  endpoint: string;
  /** `HF_TOKEN`; empty = anonymous. */
  token: string;
  fetch?: typeof fetch;
}

const MAX_REDIRECTS = 5;
const MAX_PAGES = 100;

export class HubClient {
  readonly endpoint: string;
  readonly #origin: string;
  readonly #token: string;
  readonly #fetch: typeof fetch;

  constructor(options: HubClientOptions) {
    this.endpoint = options.endpoint.replace(/\/+$/, "");
    this.#origin = new URL(this.endpoint).origin;
    this.#token = options.token;
    this.#fetch = options.fetch ?? fetch;
  }

  get hasToken(): boolean {
    return this.#token !== "";
  }

  async listFiles(repo: string, revision: string, signal?: AbortSignal): Promise<HubFile[]> {
    let url: string | undefined =
      `${this.endpoint}/api/models/${repo}/tree/${encodeURIComponent(revision)}?recursive=true`;
    const files: HubFile[] = [];
    for (let page = 0; url !== undefined && page < MAX_PAGES; page++) {
      const response = await this.#get(url, {}, signal);
      if (!response.ok) throw await hubError(response, `listing ${repo}@${revision}`, this.hasToken);
      const body = z.array(TreeEntry).safeParse(await response.json().catch(() => undefined));
      if (!body.success)
        throw new CortexError(
          "upstream_error",
          `the hub answered the listing of ${repo} in an unexpected shape`,
        );
      for (const entry of body.data) {
        if (entry.type !== "file") continue;
        files.push({
          path: entry.path,
          size: entry.lfs?.size ?? entry.size ?? 0,
          gitOid: entry.oid ?? "",
          ...(entry.lfs ? { sha256: entry.lfs.oid.replace(/^sha256:/, "").toLowerCase() } : {}),
        });
      }
      url = nextLink(response.headers.get("link"), url);
    }
    return files;
  }

  /** Opens a file for reading from `offset`; the caller checks the status (200 or 206). */
  async download(
    repo: string,
    revision: string,
    path: string,
    offset: number,
    signal?: AbortSignal,
  ): Promise<Response> {
    const encoded = path.split("/").map(encodeURIComponent).join("/");
    const url = `${this.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${encoded}`;
    const response = await this.#get(url, offset > 0 ? { range: `bytes=${offset}-` } : {}, signal);
    if (!response.ok) throw await hubError(response, `downloading ${repo}/${path}`, this.hasToken);
    return response;
  }

  /** A GET that follows redirects itself, so the token stays on the hub's origin. */
  async #get(url: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    let current = url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const sameOrigin = new URL(current).origin === this.#origin;
      const response = await this.#fetch(current, {
        headers: {
          ...headers,
          "user-agent": "cortex",
          ...(sameOrigin && this.#token !== "" ? { authorization: `Bearer ${this.#token}` } : {}),
        },
        redirect: "manual",
        ...(signal === undefined ? {} : { signal }),
      });
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && location !== null) {
        await response.body?.cancel();
        current = new URL(location, current).toString();
        continue;
      }
      return response;
    }
    throw new CortexError("upstream_error", `the hub redirected ${url} more than ${MAX_REDIRECTS} times`);
  }
}

function nextLink(header: string | null, base: string): string | undefined {
  if (header === null) return undefined;
  for (const part of header.split(",")) {
    const match = /<([^>]+)>\s*;\s*rel="?next"?/i.exec(part);
    if (match?.[1] !== undefined) return new URL(match[1], base).toString();
  }
  return undefined;
}

/** A hub error → a CortexError an operator can act on (never the neuron's own 401/403). */
async function hubError(response: Response, what: string, hasToken: boolean): Promise<CortexError> {
  await response.body?.cancel().catch(() => {});
  const code = response.headers.get("x-error-code");
  const reason = response.headers.get("x-error-message");
  const detail = `${code === null ? "" : `${code}: `}${reason ?? `HTTP ${response.status}`}`;
  const details = { hubStatus: response.status, ...(code === null ? {} : { hubErrorCode: code }) };
  if (code === "RepoNotFound" && !hasToken)
    // Anonymous, the hub answers 401 for a missing repository and for a private one alike.
    return new CortexError(
      "not_found",
      `the hub has no public repository for ${what} (${detail}); if it is private, set HF_TOKEN on the neuron`,
      { details },
    );
  if (
    response.status === 404 ||
    code === "RepoNotFound" ||
    code === "EntryNotFound" ||
    code === "RevisionNotFound"
  )
    return new CortexError("not_found", `the hub has nothing for ${what} (${detail})`, { details });
  if (response.status === 401 || response.status === 403 || code === "GatedRepo")
    return new CortexError(
      "upstream_error",
      `the hub refused ${what} (HTTP ${response.status}, ${detail}); ${
        hasToken
          ? "the neuron's HF_TOKEN has no access: accept the repository's terms on its page with that account"
          : "it is gated or private: set HF_TOKEN on the neuron to a token with access"
      }`,
      { details },
    );
  if (response.status === 416)
    return new CortexError("upstream_error", `the hub refused the range for ${what} (HTTP 416)`, { details });
  return new CortexError("upstream_error", `the hub failed ${what} (${detail})`, {
    details,
    ...(response.status === 429 || response.status >= 500 ? { retryAfterS: 5 } : {}),
  });
}
