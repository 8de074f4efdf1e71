/**
 * `POST /models/remove`: deletes a model file from the models directory
 * (every part of a split model named by its first part), unless a model is
 * loaded from it or a pull is writing it (409). Folders a pull made and the
 * removal emptied go too.
 */
import { rm, rmdir } from "node:fs/promises";
import { dirname } from "node:path";
import { CortexError } from "../../core/errors.ts";
import type { LoadedModel } from "../../core/neuron-api.ts";
import type { ModelsDir } from "../models-dir.ts";
import type { PullManager } from "./pull-manager.ts";

const SPLIT = /-(\d{5})-of-(\d{5})\.gguf$/i;

export async function removeModelFile(
  file: string,
  context: { modelsDir: ModelsDir; loaded: readonly LoadedModel[]; pulls: PullManager },
): Promise<string[]> {
  const { modelsDir } = context;
  if (modelsDir.resolveFile(file) === undefined)
    throw new CortexError(
      "invalid_request",
      `file: ${JSON.stringify(file)} is outside the models directory`,
      {
        param: "file",
      },
    );
  const available = (await modelsDir.list()).map((model) => model.file);
  if (!available.includes(file))
    throw new CortexError("not_found", `no GGUF file ${JSON.stringify(file)} in ${modelsDir.root}`);
  const split = SPLIT.exec(file);
  const prefix = split === null ? undefined : file.slice(0, split.index);
  const parts =
    split === null
      ? [file]
      : available.filter((other) => {
          const match = SPLIT.exec(other);
          return match !== null && other.slice(0, match.index) === prefix && match[2] === split[2];
        });
  for (const part of parts) {
    const user = context.loaded.find((model) => model.file === part && model.state !== "failed");
    if (user !== undefined)
      throw new CortexError(
        "conflict",
        `${part} is loaded as model ${user.id}; unload it first (cortex models unload ${user.id})`,
      );
    if (context.pulls.isPulling(part))
      throw new CortexError("conflict", `${part} is being pulled; wait for the pull to finish`);
  }
  for (const part of parts) await rm(modelsDir.resolveFile(part) as string, { force: true });
  // Empty folders left behind (org/repo from a pull), up to the models directory itself.
  let dir = dirname(modelsDir.resolveFile(file) as string);
  while (dir.startsWith(`${modelsDir.root}/`)) {
    try {
      await rmdir(dir);
    } catch {
      break;
    }
    dir = dirname(dir);
  }
  return parts;
}
