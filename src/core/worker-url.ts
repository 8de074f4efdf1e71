/**
 * Where a Worker's entry module is, in a source checkout and in the compiled
 * executable alike. `npm run build` compiles every `src/**\/*-worker.ts` as
 * an extra entry point; inside the binary those live in Bun's virtual file
 * system at their path relative to `src/`, and `new Worker()` resolves them
 * only by that relative path.
 */
export function workerUrl(pathFromSrc: string, sourceUrl: URL): string | URL {
  return isCompiled() ? `./${pathFromSrc.replace(/^\.?\//, "")}` : sourceUrl;
}

/** True inside the `bun build --compile` executable. */
export function isCompiled(): boolean {
  return import.meta.url.startsWith("file:///$bunfs/") || import.meta.url.includes("/$bunfs/");
}
