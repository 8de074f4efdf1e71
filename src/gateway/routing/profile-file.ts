/**
 * The file a profile loads on a node: its per-node name, its `file`, or,
 * for a profile with a `source` only, the file a pull of that source put in
 * the node's models directory (found with the neuron's own selection rules).
 */
import type { ModelProfile } from "../../core/config/config-schema.ts";
import { parseModelSource, pulledPath, selectGguf } from "../../core/model-source.ts";
import type { AvailableModel } from "../../core/neuron-api.ts";

export type FileProfile = Pick<ModelProfile, "file" | "files" | "source">;

export function profileFileOn(
  profile: FileProfile,
  node: { name: string; available: readonly AvailableModel[] },
): string | undefined {
  const named = profile.files[node.name] ?? profile.file;
  if (named !== undefined || profile.source === undefined) return named;
  const source = parseModelSource(profile.source);
  const prefix = `${source.repo}/`;
  const paths = node.available
    .filter((model) => model.file.startsWith(prefix))
    .map((model) => model.file.slice(prefix.length));
  try {
    const first = selectGguf(paths, source).parts[0];
    return first === undefined ? undefined : pulledPath(source, first);
  } catch {
    return undefined;
  }
}
