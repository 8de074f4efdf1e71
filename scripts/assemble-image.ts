/**
 * `bun scripts/assemble-image.ts [--variant cpu|cuda] [--out DIR]`: lays out
 * the file tree the Containerfile copies into its base image, from the
 * binary and native sets `npm run build` put in dist/:
 *
 *   opt/cortex/cortex                the executable (gateway and neuron)
 *   opt/cortex/native/               the CPU native set, the C shim's sources
 *   opt/cortex/native/cuda/          the CUDA set (variant cuda only)
 *   var/lib/cortex/models/           the default models folder (a volume in Kubernetes)
 *
 * Everything is readable by any user and nothing in it is written at run time,
 * so the image runs as a non-root user on a read-only root file system.
 * Default output: dist/image/<variant>/ (the Containerfile's build context
 * is the repository; .containerignore leaves out all but dist/image).
 */
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const root = join(import.meta.dir, "..");

export type ImageVariant = "cpu" | "cuda";

/** Copies dist/ into `out` as the image's root file system; throws naming what is missing. */
export function assembleImage(options: { dist: string; out: string; variant: ImageVariant }): void {
  const { dist, out, variant } = options;
  const binary = join(dist, "cortex");
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run npm run build first`);
  if (variant === "cuda" && !existsSync(join(dist, "native/cuda")))
    throw new Error(
      `${join(dist, "native/cuda")} is missing: the cuda variant needs the CUDA set (npm run setup:cuda, then npm run build)`,
    );
  rmSync(out, { recursive: true, force: true });
  const opt = join(out, "opt/cortex");
  mkdirSync(opt, { recursive: true });
  cpSync(binary, join(opt, "cortex"));
  cpSync(join(dist, "native"), join(opt, "native"), {
    recursive: true,
    // The CPU image carries no CUDA set: it would only be ~500 MB that never loads.
    filter: (source) => variant === "cuda" || !source.startsWith(join(dist, "native/cuda")),
  });
  mkdirSync(join(out, "var/lib/cortex/models"), { recursive: true });
  readableByAll(out);
}

/** Directories 0755, the executable 0755, everything else 0644: any uid can run it, none can change it. */
function readableByAll(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) readableByAll(path);
    else chmodSync(path, entry === "cortex" ? 0o755 : 0o644);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      variant: { type: "string", default: "cpu" },
      out: { type: "string" },
      dist: { type: "string", default: join(root, "dist") },
    },
  });
  if (values.variant !== "cpu" && values.variant !== "cuda") {
    console.error(`assemble-image: --variant: expected cpu or cuda, got ${JSON.stringify(values.variant)}`);
    process.exit(2);
  }
  const variant: ImageVariant = values.variant;
  const out = resolve(values.out ?? join(root, "dist/image", variant));
  try {
    assembleImage({ dist: resolve(values.dist), out, variant });
  } catch (error) {
    console.error(`assemble-image: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
  console.log(`assemble-image: ${variant} tree in ${out}`);
}
