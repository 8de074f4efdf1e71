/**
 * Messages between the main thread and the aborter Worker. Plain objects only:
 * they cross postMessage.
 */
import type { AbortOutcome, CommunicatorHandle } from "./communicator.ts";

export type AborterRequest =
  /** Load the native libraries now, while nothing is wrong, so an abort does not start with a dlopen. */
  { type: "warm"; libraryPaths: string[] } | { type: "abort"; id: number; handles: CommunicatorHandle[] };

export type AborterEvent =
  | { type: "warmed"; error?: string }
  | { type: "rank-start"; id: number; rank: number }
  | { type: "rank-done"; id: number; rank: number; outcome: AbortOutcome; ms: number; error?: string }
  | { type: "done"; id: number };
