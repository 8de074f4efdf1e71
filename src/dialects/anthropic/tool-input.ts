/**
 * Tool arguments (JSON text) as the `input` object Anthropic requires. The
 * model's JSON can be malformed or not an object; Anthropic has no way to
 * carry that, so the input degrades to `{}` instead of failing the answer.
 */
export function toolInputFromArguments(args: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(args);
    if (value !== null && typeof value === "object" && !Array.isArray(value))
      return value as Record<string, unknown>;
  } catch {
    // Falls through to the empty object.
  }
  return {};
}

/** Tool-use ids the client will echo back must look like Anthropic's and match `^[a-zA-Z0-9_-]+$`. */
export function toAnthropicToolId(id: string): string {
  if (/^toolu_[a-zA-Z0-9_-]+$/.test(id)) return id;
  return `toolu_${id.replace(/[^a-zA-Z0-9_-]/g, "")}`;
}
