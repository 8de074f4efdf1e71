/**
 * The catalogue in Anthropic's Models API shape, for clients that send
 * `anthropic-version` (the Anthropic SDK's `models.list`/`retrieve`, Claude
 * Code's model picker): `type: "model"`, `display_name`, an RFC 3339
 * `created_at`, and the list's `first_id`/`last_id`/`has_more`.
 */
export interface AnthropicModel {
  type: "model";
  id: string;
  display_name: string;
  created_at: string;
}

/** One catalogue entry (its id and `created`, epoch seconds) in Anthropic's shape. */
export function renderAnthropicModel(entry: { id: string; created: number }): AnthropicModel {
  return {
    type: "model",
    id: entry.id,
    display_name: entry.id,
    created_at: new Date(entry.created * 1000).toISOString(),
  };
}

export function renderAnthropicModelList(entries: ReadonlyArray<{ id: string; created: number }>): {
  data: AnthropicModel[];
  has_more: false;
  first_id: string | null;
  last_id: string | null;
} {
  const data = entries.map(renderAnthropicModel);
  return { data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
}
