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
import { assertNever, type CanonicalMessage, type CanonicalRequest } from "../../dialects/canonical.ts";

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

/**
 * A message's link after `previous`: its long strings (texts, a tool call's
 * arguments, an image's data) hashed where they lie, in order, and the rest
 * (role, part types, ids, names, each long string's length) in an outline
 * hashed last, each item tagged and sized so that the outline and the strings
 * determine the message. JSON.stringify of every message copied and escaped
 * the whole conversation on every request, which an agent resends each turn.
 */
function messageLink(message: CanonicalMessage, previous: bigint): bigint {
  const at: Linking = { hash: previous, outline: message.role };
  if ("asParts" in message && message.asParts === true) at.outline += "*";
  for (const part of message.content) addPart(at, part);
  return link(at.outline, at.hash);
}

type Part = CanonicalMessage["content"][number];

interface Linking {
  hash: bigint;
  outline: string;
}

/** A long string: its length in the outline, its text in the hash. */
function addText(at: Linking, tag: string, value: string): void {
  at.outline += `${tag}${value.length};`;
  at.hash = Bun.hash(value, at.hash) as bigint;
}

/** A short string (an id, a name): in the outline, after its length. */
function addShort(at: Linking, value: string): void {
  at.outline += `${value.length}:${value}`;
}

function addPart(at: Linking, part: Part): void {
  switch (part.type) {
    case "text":
      addText(at, "t", part.text);
      return;
    case "thinking":
      addText(at, "r", part.text);
      return;
    case "tool_call":
      at.outline += "c";
      addShort(at, part.id);
      addShort(at, part.name);
      addText(at, "a", part.arguments);
      return;
    case "image":
      if (part.source.kind === "url") addText(at, "u", part.source.url);
      else {
        at.outline += "b";
        addShort(at, part.source.mediaType);
        addText(at, "d", part.source.data);
      }
      return;
    case "tool_result":
      at.outline += part.isError ? "o!" : "o";
      addShort(at, part.toolCallId);
      at.outline += `[${part.content.length};`;
      for (const inner of part.content) addPart(at, inner);
      return;
    default:
      // A part kind added to canonical.ts must be hashed here, or two messages that differ in it would match.
      assertNever(part);
  }
}

export function prefixChain(
  request: Pick<CanonicalRequest, "model" | "messages" | "tools" | "sessionKey">,
  model = request.model,
): PrefixChain {
  const system = request.messages.filter((message) => message.role === "system");
  const session =
    request.sessionKey === undefined ? 0n : link(JSON.stringify([model, request.sessionKey]), 0n);
  // Link 0: the model and the tools (JSON schemas: structure more than text), then the system prompt's text.
  let hash = link(JSON.stringify([model, request.tools]), session);
  for (const message of system) hash = messageLink(message, hash);
  const chain =
    session !== 0n ? [session, hash] : system.length > 0 || request.tools.length > 0 ? [hash] : [];
  const firstOwn = chain.length;
  for (const message of request.messages) {
    if (message.role === "system") continue;
    hash = messageLink(message, hash);
    chain.push(hash);
  }
  const conversation = session !== 0n ? session : chain[firstOwn];
  return conversation === undefined ? chain : Object.assign(chain, { conversation });
}
