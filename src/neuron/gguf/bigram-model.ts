import { SENTENCE_ENDS, type TinyVocab } from "./tiny-vocab.ts";

/**
 * A word-level bigram language model over a `TinyVocab`, shaped so that generation always
 * ends: end-of-generation only ever follows a sentence end, is the most likely token there,
 * and the greedy successor graph has no cycles.
 *
 * States: 0 is "sentence start" (what every special, byte and partial-word token leads to);
 * state 1 + i belongs to content token `contentIds[i]`.
 */
export interface BigramModel {
  nStates: number;
  /** Emittable tokens: the `▁word`s and punctuation, the space-less sentence starters, then end-of-generation. */
  emitIds: number[];
  /** State each emittable token leads to; -1 for end-of-generation. */
  emitState: Int32Array;
  /** Row-major [nStates][emitIds.length] next-token probabilities; rows sum to 1. */
  probs: Float64Array;
  /** State each vocabulary token leads to. */
  stateOfToken: Int32Array;
  /** Longest greedy run (tokens, end-of-generation included) from any state. */
  maxGreedySteps: number;
  /** States whose greedy successor was redirected to a sentence end to break a cycle. */
  cyclesBroken: number;
}

export interface BigramOptions {
  /** Token id that ends generation. */
  eogId: number;
  /** Probability of ending the answer after a sentence end. Default 0.6. */
  endProbability?: number;
  /** Additive smoothing weight towards unigram frequencies. Default 1. */
  smoothing?: number;
}

export const START_STATE = 0;
/** Logit gap that keeps the greedy choice unambiguous after float32 rounding. */
const GREEDY_MARGIN = 0.05;

export function buildBigramModel(vocab: TinyVocab, options: BigramOptions): BigramModel {
  const endProbability = options.endProbability ?? 0.6;
  const alpha = options.smoothing ?? 1;
  const { contentIds, corpusIds, bareIds } = vocab;
  const nContent = contentIds.length;
  const nStates = nContent + 1;
  // Columns: content tokens [0, nContent), space-less starters, end-of-generation last.
  const starters = contentIds.flatMap((id, j) => {
    const bare = bareIds.get(id);
    return bare === undefined ? [] : [{ j, bare }];
  });
  const emitIds = [...contentIds, ...starters.map((s) => s.bare), options.eogId];
  const width = emitIds.length;
  const eog = width - 1;
  const emitState = new Int32Array(width);
  for (let j = 0; j < nContent; j++) emitState[j] = j + 1;
  for (const [k, { j }] of starters.entries()) emitState[nContent + k] = j + 1;
  emitState[eog] = -1;

  const indexOf = new Map<number, number>(contentIds.map((id, i) => [id, i]));
  const isEnd = contentIds.map((id) => SENTENCE_ENDS.has(vocab.tokens[id] ?? ""));

  const seq = corpusIds.map((id) => indexOf.get(id) ?? 0);
  const unigram = new Float64Array(nContent);
  const pairCounts = new Float64Array(nContent * nContent);
  const fromCounts = new Float64Array(nContent);
  const startCounts = new Float64Array(nContent);
  for (const [i, cur] of seq.entries()) {
    unigram[cur] = (unigram[cur] ?? 0) + 1 / seq.length;
    const prev = i === 0 ? undefined : seq[i - 1];
    if (prev === undefined || isEnd[prev]) {
      startCounts[cur] = (startCounts[cur] ?? 0) + 1;
    } else {
      pairCounts[prev * nContent + cur] = (pairCounts[prev * nContent + cur] ?? 0) + 1;
      fromCounts[prev] = (fromCounts[prev] ?? 0) + 1;
    }
  }

  // Sentences start with words seen starting one: space-less at the start of the answer,
  // space-prefixed after a sentence end.
  const startDist = new Float64Array(nContent);
  let startTotal = 0;
  for (const { j } of starters) {
    startDist[j] = (startCounts[j] ?? 0) + alpha * (unigram[j] ?? 0);
    startTotal += startDist[j] ?? 0;
  }
  for (let j = 0; j < nContent; j++) startDist[j] = (startDist[j] ?? 0) / startTotal;

  const probs = new Float64Array(nStates * width);
  for (const [k, { j }] of starters.entries()) probs[START_STATE * width + nContent + k] = startDist[j] ?? 0;
  for (let i = 0; i < nContent; i++) {
    const row = probs.subarray((i + 1) * width, (i + 2) * width);
    if (isEnd[i]) {
      for (let j = 0; j < nContent; j++) row[j] = (1 - endProbability) * (startDist[j] ?? 0);
      row[eog] = endProbability;
      continue;
    }
    const total = (fromCounts[i] ?? 0) + alpha;
    for (let j = 0; j < nContent; j++) {
      row[j] = ((pairCounts[i * nContent + j] ?? 0) + alpha * (unigram[j] ?? 0)) / total;
    }
  }
  for (let s = 0; s < nStates; s++) sharpenArgmax(probs.subarray(s * width, (s + 1) * width));

  const stateOfToken = new Int32Array(vocab.tokens.length).fill(START_STATE);
  for (const [j, id] of emitIds.entries()) if (j !== eog) stateOfToken[id] = emitState[j] ?? START_STATE;

  const nextState = (j: number) => emitState[j] ?? -1;
  const bestEnd = pickSentenceEnd(isEnd, unigram);
  const cyclesBroken = breakGreedyCycles(probs, nStates, width, nextState, isEnd, bestEnd);
  const maxGreedySteps = longestGreedyRun(probs, nStates, width, nextState);
  return { nStates, emitIds, emitState, probs, stateOfToken, maxGreedySteps, cyclesBroken };
}

/** Index of the largest entry; the lowest index wins ties, as in llama.cpp's greedy sampler. */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < row.length; j++) if ((row[j] ?? 0) > (row[best] ?? 0)) best = j;
  return best;
}

/** Raises the top entry so it beats the runner-up by a clear margin in log space, then renormalises. */
function sharpenArgmax(row: Float64Array): void {
  const top = argmax(row);
  let second = 0;
  for (let j = 0; j < row.length; j++) if (j !== top) second = Math.max(second, row[j] ?? 0);
  const wanted = second * Math.exp(GREEDY_MARGIN);
  if ((row[top] ?? 0) >= wanted) return;
  row[top] = wanted;
  let total = 0;
  for (const p of row) total += p;
  for (let j = 0; j < row.length; j++) row[j] = (row[j] ?? 0) / total;
}

function pickSentenceEnd(isEnd: readonly boolean[], unigram: Float64Array): number {
  let best = -1;
  for (const [j, end] of isEnd.entries()) {
    if (end && (best < 0 || (unigram[j] ?? 0) > (unigram[best] ?? 0))) best = j;
  }
  if (best < 0) throw new Error("the corpus has no sentence ends");
  return best;
}

/**
 * Follows greedy successors from every state; on a cycle, redirects the cycle's state most
 * inclined to end a sentence to a sentence end (swapping the two probabilities). Returns the
 * number of states changed.
 */
function breakGreedyCycles(
  probs: Float64Array,
  nStates: number,
  width: number,
  nextState: (emit: number) => number,
  isEnd: readonly boolean[],
  endIndex: number,
): number {
  let changed = 0;
  for (let guard = 0; guard <= nStates; guard++) {
    const cycle = findGreedyCycle(probs, nStates, width, nextState);
    if (cycle === undefined) return changed;
    let victim = cycle[0] ?? 0;
    let victimEndMass = -1;
    for (const state of cycle) {
      const row = probs.subarray(state * width, (state + 1) * width);
      let endMass = 0;
      for (const [j, end] of isEnd.entries()) if (end) endMass += row[j] ?? 0;
      if (endMass > victimEndMass) {
        victim = state;
        victimEndMass = endMass;
      }
    }
    const row = probs.subarray(victim * width, (victim + 1) * width);
    const top = argmax(row);
    const topP = row[top] ?? 0;
    row[top] = row[endIndex] ?? 0;
    row[endIndex] = topP;
    sharpenArgmax(row);
    changed++;
  }
  throw new Error("could not make the greedy successor graph acyclic");
}

function findGreedyCycle(
  probs: Float64Array,
  nStates: number,
  width: number,
  nextState: (emit: number) => number,
): number[] | undefined {
  const done = new Uint8Array(nStates); // 0 unvisited, 1 on the current path, 2 reaches the end
  for (let s0 = 0; s0 < nStates; s0++) {
    const path: number[] = [];
    let s = s0;
    while (s >= 0 && done[s] === 0) {
      done[s] = 1;
      path.push(s);
      s = nextState(argmax(probs.subarray(s * width, (s + 1) * width)));
    }
    if (s >= 0 && done[s] === 1) return path.slice(path.indexOf(s));
    for (const p of path) done[p] = 2;
  }
  return undefined;
}

function longestGreedyRun(
  probs: Float64Array,
  nStates: number,
  width: number,
  nextState: (emit: number) => number,
): number {
  let longest = 0;
  for (let s0 = 0; s0 < nStates; s0++) {
    let steps = 0;
    for (let s = s0; s >= 0; steps++) {
      if (steps > nStates) throw new Error("greedy successor graph has a cycle");
      s = nextState(argmax(probs.subarray(s * width, (s + 1) * width)));
    }
    longest = Math.max(longest, steps);
  }
  return longest;
}
