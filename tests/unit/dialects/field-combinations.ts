/** Helpers for tests that hold a hand-written check to a zod schema over many inputs. */

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
