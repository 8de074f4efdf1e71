import { z } from "zod";
import { CortexError } from "../core/errors.ts";
import { isJsonObject, jsonKind } from "../core/json-object.ts";

/** Validates one received value; a failure is a 400 naming the offending field. */
export function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown, path: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = [path, ...(issue?.path ?? []).map(String)].filter((p) => p !== "").join(".");
  const message = issue ? `${where}: ${issue.message}` : `${where}: invalid value`;
  throw new CortexError("invalid_request", message, { param: where, cause: result.error });
}

/** A 400 for a field the fleet cannot honour (it would change the answer if ignored). */
export function unsupported(param: string, message: string): CortexError {
  return new CortexError("unsupported_parameter", message, { param });
}

/** An object with a string `type` (a content part, a block), its other keys kept. */
export const TypedObject = z.looseObject({ type: z.string() });

/** What TypedObject accepts, checked by hand (for the hot path's hand checks of whole messages). */
export function isTypedObject(value: unknown): value is z.infer<typeof TypedObject> {
  return isJsonObject(value) && typeof value.type === "string";
}

/**
 * A JSON object taken as it is (a tool's JSON schema, a tool call's input,
 * template kwargs), with zod's own message when it is not one. `z.record`
 * validates by building a copy, key by key, and an agent resends the schemas
 * of all its tools on every request.
 */
export const jsonObject = z.custom<Record<string, unknown>>(isJsonObject, {
  error: (issue) => `Invalid input: expected record, received ${jsonKind(issue.input)}`,
});
