/** Helpers for tests that hold a hand-written check to a zod schema over many inputs. */
import { expect } from "bun:test";
import type { z } from "zod";

/** Every combination of the given values per key (undefined: the key left out). */
export function combinations(fields: Record<string, unknown[]>): Array<Record<string, unknown>> {
  let out: Array<Record<string, unknown>> = [{}];
  for (const [key, values] of Object.entries(fields))
    out = out.flatMap((partial) =>
      values.map((value) => (value === undefined ? partial : { ...partial, [key]: value })),
    );
  return out;
}

/** What `parse` returns, or the error it throws (as text), so two ways of parsing can be compared. */
export function outcome(parse: () => unknown): unknown {
  try {
    return parse();
  } catch (error) {
    return { error: String(error) };
  }
}

/**
 * Holds a hand check to a zod schema over `inputs`: `vouch` is true exactly
 * where `schema` accepts the input, and where it does, each of `reads` gives
 * the same outcome for the input as for zod's copy of it (the keys zod strips
 * must not matter). Returns how many inputs were vouched for.
 */
export function expectVouchedAsZod(
  inputs: unknown[],
  schema: z.ZodType,
  vouch: (input: unknown) => boolean,
  reads: Array<(input: unknown) => unknown>,
): number {
  let vouched = 0;
  for (const input of inputs) {
    const parsed = schema.safeParse(input);
    expect({ input, vouched: vouch(input) }).toEqual({ input, vouched: parsed.success });
    if (!parsed.success) continue;
    vouched++;
    for (const read of reads) expect(outcome(() => read(input))).toEqual(outcome(() => read(parsed.data)));
  }
  return vouched;
}
