import { LLAMA_TOKEN_TYPE } from "./gguf-types.ts";

/** SentencePiece's word-boundary marker; llama.cpp's SPM tokenizer turns spaces into it. */
export const SPM_SPACE = "\u2581";

/** Fixed ids of the special tokens every cortex-made model shares. */
export const TINY_SPECIAL_TOKENS = {
  unk: 0,
  bos: 1,
  /** `</s>`: kept for SPM convention; llama.cpp treats it as end-of-generation too. */
  eos: 2,
  firstByte: 3,
  imStart: 259,
  imEnd: 260,
} as const;

export const IM_START = "<|im_start|>";
export const IM_END = "<|im_end|>";

/** Punctuation that ends a sentence (and may end the answer). */
export const SENTENCE_ENDS: ReadonlySet<string> = new Set([".", "!", "?"]);

/**
 * An SPM ("llama") vocabulary built from a text: specials, 256 byte-fallback tokens,
 * punctuation, one `▁word` token per distinct word, a space-less variant of each word that
 * starts a sentence (so an answer's first word has no leading space), and every proper
 * prefix of those (llama.cpp's SPM tokenizer only merges adjacent symbols into tokens that
 * exist, so a word is reachable only through its prefixes).
 */
export interface TinyVocab {
  tokens: string[];
  tokenTypes: number[];
  scores: number[];
  /** Ids of the tokens the language model emits: punctuation and whole words, in first-seen order. */
  contentIds: number[];
  /** The corpus as a sequence of content token ids. */
  corpusIds: number[];
  /** Space-less token of each sentence-initial word, keyed by the word's `▁word` id. */
  bareIds: ReadonlyMap<number, number>;
  idOf: ReadonlyMap<string, number>;
}

/** Splits prose into words and punctuation marks. */
export function splitWords(text: string): string[] {
  return text.match(/\p{L}[\p{L}'’]*|[.,!?;:]/gu) ?? [];
}

/** Token text of a corpus word or punctuation mark. */
export function pieceOf(word: string): string {
  return /^\p{L}/u.test(word) ? `${SPM_SPACE}${word}` : word;
}

export function buildTinyVocab(corpus: string): TinyVocab {
  const tokens: string[] = ["<unk>", "<s>", "</s>"];
  const tokenTypes: number[] = [LLAMA_TOKEN_TYPE.unknown, LLAMA_TOKEN_TYPE.control, LLAMA_TOKEN_TYPE.control];
  for (let byte = 0; byte < 256; byte++) {
    tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`);
    tokenTypes.push(LLAMA_TOKEN_TYPE.byte);
  }
  tokens.push(IM_START, IM_END);
  tokenTypes.push(LLAMA_TOKEN_TYPE.control, LLAMA_TOKEN_TYPE.control);

  const idOf = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const add = (piece: string): number => {
    const existing = idOf.get(piece);
    if (existing !== undefined) return existing;
    const id = tokens.length;
    tokens.push(piece);
    tokenTypes.push(LLAMA_TOKEN_TYPE.normal);
    idOf.set(piece, id);
    return id;
  };

  add(SPM_SPACE);
  const words = splitWords(corpus);
  const corpusIds = words.map((word) => add(pieceOf(word)));
  const contentIds = [...new Set(corpusIds)];
  const bareIds = new Map<number, number>();
  for (const [i, word] of words.entries()) {
    const prev = i === 0 ? undefined : words[i - 1];
    const id = corpusIds[i];
    if (id === undefined || !/^\p{L}/u.test(word) || (prev !== undefined && !SENTENCE_ENDS.has(prev)))
      continue;
    if (!bareIds.has(id)) bareIds.set(id, add(word));
  }
  // Chat role names follow a control token, where llama.cpp adds a space: " user" etc.
  const roleIds = ["system", "user", "assistant", "tool"].map((role) => add(`${SPM_SPACE}${role}`));
  for (const id of [...contentIds, ...bareIds.values(), ...roleIds]) {
    const chars = [...(tokens[id] ?? "")];
    for (let n = 2; n < chars.length; n++) add(chars.slice(0, n).join(""));
  }
  // Scores order competing merges: inside " The" both "▁T" and "Th" exist, and the
  // space-prefixed path must win, so space-less pieces score lower.
  const scores = tokens.map((t, id) =>
    tokenTypes[id] === LLAMA_TOKEN_TYPE.normal && !t.startsWith(SPM_SPACE) && t.length > 1 ? -1 : 0,
  );
  return { tokens, tokenTypes, scores, contentIds, corpusIds, bareIds, idOf };
}
