/**
 * A request's prompt prefix as a chain of hashes at message boundaries:
 * link 0 covers the model, the system messages and the tools (what an agent
 * resends unchanged every turn), each further link adds one more message.
 * Without system messages and tools there is no link 0: every request of the
 * model would share it, though it stands for no more than a few template
 * tokens. Two
 * requests share their first n links exactly when they share the model,
 * system, tools and first n − 1 other messages, so the length of the common
 * chain is a cheap, tokenizer-free measure of how much of a neuron's KV cache
 * a request could reuse.
 *
 * A request that names its session (CanonicalRequest.sessionKey) starts its
 * chain with a link of that name instead, so every later link is the
 * session's own: the node that served the session matches it and no other
 * node does, whatever prompts they share. Sessions spread over the nodes
 * (a new session matches nowhere and goes to the least busy), requests of
 * one session stay together.
 */
import type { CanonicalRequest } from "../../dialects/canonical.ts";

/**
 * `conversation`: the link that names the conversation (its session link, or
 * else the link of its first message after the system prompt and tools),
 * alike in every turn of it and, unlike the chain's matches, alike in every
 * gateway replica: the key of rendezvous-hash routing (rendezvous.ts).
 */
export type PrefixChain = readonly bigint[] & { readonly conversation?: bigint };

function link(text: string, previous: bigint): bigint {
  return BigInt(Bun.hash(text, previous));
}

export function prefixChain(
  request: Pick<CanonicalRequest, "model" | "messages" | "tools" | "sessionKey">,
  model = request.model,
): PrefixChain {
  const system = request.messages.filter((message) => message.role === "system");
  const session =
    request.sessionKey === undefined ? 0n : link(JSON.stringify([model, request.sessionKey]), 0n);
  let hash = link(JSON.stringify([model, system, request.tools]), session);
  const chain =
    session !== 0n ? [session, hash] : system.length > 0 || request.tools.length > 0 ? [hash] : [];
  const firstOwn = chain.length;
  for (const message of request.messages) {
    if (message.role === "system") continue;
    hash = link(JSON.stringify(message), hash);
    chain.push(hash);
  }
  const conversation = session !== 0n ? session : chain[firstOwn];
  return conversation === undefined ? chain : Object.assign(chain, { conversation });
}
