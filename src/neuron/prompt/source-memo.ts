/**
 * What is worked out once per chat-template source (its parse, its
 * capability probes, its llama.cpp family) and reused by every render of
 * it. Bounded: a neuron holds a few models, so past 32 sources a cache
 * starts over rather than grow with templates seen once.
 */

const MAX_SOURCES = 32;

/** `compute()` for `source` once; a compute that throws caches nothing. */
export function memoBySource<T>(cache: Map<string, T>, source: string, compute: () => T): T {
  const known = cache.get(source);
  if (known !== undefined || cache.has(source)) return known as T;
  const value = compute();
  if (cache.size > MAX_SOURCES) cache.clear();
  cache.set(source, value);
  return value;
}
