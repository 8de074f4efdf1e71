/**
 * The group control block: one SharedArrayBuffer per tensor-parallel group,
 * created by the main thread before the group forms and sent to every rank's
 * Worker. It is the communicator "handle" the watchdog caches: whatever a rank
 * needs to be aborted from another thread lives here (its state word, its
 * native communicator pointer), so a wedged Worker never has to answer a
 * question for the abort to work.
 *
 * Every rank's state word follows one protocol that makes abort safe against
 * a concurrent call into the library and makes teardown after an abort a
 * no-op (never a second abort, never a use of a freed communicator):
 *
 *   UNINIT ──publish──▶ LIVE ◀──leave── BUSY      (BUSY = inside a library call)
 *      │                 │ └────enter────▶ │
 *      │                 ▼                 ▼
 *      └──────────▶ ABORTING ──▶ ABORTED          (claimed by exactly one aborter)
 *   UNINIT/LIVE ──destroy──▶ DESTROYED
 *
 * Only the thread that wins the compare-and-swap into ABORTING calls the
 * native abort; only the thread that wins LIVE → DESTROYED calls destroy.
 */

export const RANK_STATE = {
  uninit: 0,
  live: 1,
  busy: 2,
  aborting: 3,
  aborted: 4,
  destroyed: 5,
  failed: 6,
} as const;
export type RankStateName = keyof typeof RANK_STATE;

/** What a rank is doing, for the flight recorder and the watchdog's ERROR lines. */
export const RANK_PHASE = {
  idle: 0,
  init: 1,
  collective: 2,
  forward: 3,
  destroy: 4,
} as const;
export type RankPhaseName = keyof typeof RANK_PHASE;

export const BACKEND_CODE = { shm: 0, nccl: 1 } as const;
export type CommunicatorBackendName = keyof typeof BACKEND_CODE;

const MAGIC = 0x54500001;
const HEADER_WORDS = 8;
const RANK_WORDS = 8;

// Header word indices.
const H_MAGIC = 0;
const H_SIZE = 1;
const H_GROUP_ABORT = 2;
/** Barrier generation; also the word every blocked rank sleeps on, so an abort wakes them all. */
export const H_GEN = 3;
export const H_ARRIVED = 4;
const H_BACKEND = 5;

// Per-rank word offsets.
const R_STATE = 0;
const R_PHASE = 1;
const R_SEQ = 2;
const R_STEP = 3;
const R_PTR = 4; // two words, read as one BigInt64
const R_ERROR = 6;
const R_SHORT = 7;

export interface ControlView {
  readonly sab: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly size: number;
  readonly backend: CommunicatorBackendName;
}

function rankBase(rank: number): number {
  return HEADER_WORDS + rank * RANK_WORDS;
}

/** Byte offset of the barrier value slots (two generations of `size` float64 each, then two results). */
export function valuesByteOffset(size: number): number {
  return (HEADER_WORDS + size * RANK_WORDS) * 4;
}

/** Creates a group's control block; the main thread does this before forming the group. */
export function createControlBlock(size: number, backend: CommunicatorBackendName): SharedArrayBuffer {
  if (!Number.isInteger(size) || size < 1 || size > 64) {
    throw new RangeError(`tensor-parallel group size must be 1..64, got ${size}`);
  }
  const bytes = valuesByteOffset(size) + (2 * size + 2) * 8;
  const sab = new SharedArrayBuffer(bytes);
  const i32 = new Int32Array(sab);
  i32[H_MAGIC] = MAGIC;
  i32[H_SIZE] = size;
  i32[H_BACKEND] = BACKEND_CODE[backend];
  return sab;
}

export function controlView(sab: SharedArrayBuffer): ControlView {
  const i32 = new Int32Array(sab);
  if (i32[H_MAGIC] !== MAGIC) throw new TypeError("not a tensor-parallel control block");
  const size = i32[H_SIZE]!;
  const backend: CommunicatorBackendName = i32[H_BACKEND] === BACKEND_CODE.nccl ? "nccl" : "shm";
  return { sab, i32, size, backend };
}

function checkRank(view: ControlView, rank: number): number {
  if (!Number.isInteger(rank) || rank < 0 || rank >= view.size) {
    throw new RangeError(`rank ${rank} is outside a group of ${view.size}`);
  }
  return rankBase(rank);
}

export function rankState(view: ControlView, rank: number): RankStateName {
  const code = Atomics.load(view.i32, checkRank(view, rank) + R_STATE);
  return stateName(code);
}

function stateName(code: number): RankStateName {
  for (const [name, value] of Object.entries(RANK_STATE)) {
    if (value === code) return name as RankStateName;
  }
  return "failed";
}

function phaseName(code: number): RankPhaseName {
  for (const [name, value] of Object.entries(RANK_PHASE)) {
    if (value === code) return name as RankPhaseName;
  }
  return "idle";
}

export function isGroupAborted(view: ControlView): boolean {
  return Atomics.load(view.i32, H_GROUP_ABORT) !== 0;
}

/** A rank publishes its native communicator (0n for shm) and goes LIVE; false if it was aborted first. */
export function publishLive(view: ControlView, rank: number, commPtr: bigint): boolean {
  const base = checkRank(view, rank);
  new BigInt64Array(view.sab, (base + R_PTR) * 4, 1)[0] = commPtr;
  const prev = Atomics.compareExchange(view.i32, base + R_STATE, RANK_STATE.uninit, RANK_STATE.live);
  Atomics.notify(view.i32, base + R_STATE);
  return prev === RANK_STATE.uninit;
}

/** Stores the native pointer as soon as it exists (nonblocking init), so an abort can reach a stuck init. */
export function publishPointer(view: ControlView, rank: number, commPtr: bigint): void {
  const base = checkRank(view, rank);
  new BigInt64Array(view.sab, (base + R_PTR) * 4, 1)[0] = commPtr;
}

export function commPointer(view: ControlView, rank: number): bigint {
  const base = checkRank(view, rank);
  return new BigInt64Array(view.sab, (base + R_PTR) * 4, 1)[0]!;
}

export function markFailed(view: ControlView, rank: number, errorCode: number): void {
  const base = checkRank(view, rank);
  Atomics.store(view.i32, base + R_ERROR, errorCode);
  Atomics.compareExchange(view.i32, base + R_STATE, RANK_STATE.uninit, RANK_STATE.failed);
}

/** Before a library call on the rank's communicator: LIVE → BUSY. False means it was aborted or destroyed. */
export function enterCall(view: ControlView, rank: number): boolean {
  const base = checkRank(view, rank);
  return (
    Atomics.compareExchange(view.i32, base + R_STATE, RANK_STATE.live, RANK_STATE.busy) === RANK_STATE.live
  );
}

/** After the call: BUSY → LIVE. False means an abort claimed the communicator while the call ran. */
export function leaveCall(view: ControlView, rank: number): boolean {
  const base = checkRank(view, rank);
  return (
    Atomics.compareExchange(view.i32, base + R_STATE, RANK_STATE.busy, RANK_STATE.live) === RANK_STATE.busy
  );
}

export interface AbortClaim {
  /** True for exactly one caller: the one that must call the native abort. */
  proceed: boolean;
  previous: RankStateName;
  commPtr: bigint;
}

/**
 * Claims the right to abort a rank. BUSY is claimed too: the one library call
 * NCCL allows concurrently with an in-flight operation is ncclCommAbort, and
 * the caller's leaveCall then fails, so it never touches the freed communicator.
 */
export function claimAbort(view: ControlView, rank: number): AbortClaim {
  const base = checkRank(view, rank);
  for (;;) {
    const current = Atomics.load(view.i32, base + R_STATE);
    if (current !== RANK_STATE.live && current !== RANK_STATE.busy && current !== RANK_STATE.uninit) {
      return { proceed: false, previous: stateName(current), commPtr: commPointer(view, rank) };
    }
    if (Atomics.compareExchange(view.i32, base + R_STATE, current, RANK_STATE.aborting) === current) {
      // UNINIT has no communicator yet: the rank aborts its own once init returns (publishLive fails).
      return {
        proceed: current !== RANK_STATE.uninit,
        previous: stateName(current),
        commPtr: commPointer(view, rank),
      };
    }
  }
}

/** Ends an abort: the rank is ABORTED, the group flag is set and every sleeper wakes. */
export function completeAbort(view: ControlView, rank: number): void {
  const base = checkRank(view, rank);
  Atomics.store(view.i32, base + R_STATE, RANK_STATE.aborted);
  Atomics.store(view.i32, H_GROUP_ABORT, 1);
  Atomics.add(view.i32, H_GEN, 1);
  Atomics.notify(view.i32, H_GEN);
  Atomics.notify(view.i32, base + R_STATE);
}

/**
 * Claims the right to destroy a rank's communicator. After an abort (or during
 * one, which it waits out up to `waitMs`) the answer is no: teardown after an
 * abort must not touch the communicator again.
 */
export function claimDestroy(view: ControlView, rank: number, waitMs = 5_000): boolean {
  const base = checkRank(view, rank);
  const deadline = Date.now() + waitMs;
  for (;;) {
    const current = Atomics.load(view.i32, base + R_STATE);
    if (current === RANK_STATE.live || current === RANK_STATE.uninit) {
      if (Atomics.compareExchange(view.i32, base + R_STATE, current, RANK_STATE.destroyed) === current) {
        return current === RANK_STATE.live;
      }
      continue;
    }
    if (current !== RANK_STATE.aborting) return false;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    Atomics.wait(view.i32, base + R_STATE, RANK_STATE.aborting, left);
  }
}

/**
 * Brackets a short, non-blocking library call (an async-error query, a stream
 * query) made while BUSY. With `awaitShortCalls` on the aborter's side this is
 * a Dekker handshake: either the rank sees the abort claim and skips the call,
 * or the aborter sees the call and waits for it before freeing the communicator.
 */
export function beginShortCall(view: ControlView, rank: number): boolean {
  const base = checkRank(view, rank);
  Atomics.store(view.i32, base + R_SHORT, 1);
  if (Atomics.load(view.i32, base + R_STATE) === RANK_STATE.busy) return true;
  Atomics.store(view.i32, base + R_SHORT, 0);
  Atomics.notify(view.i32, base + R_SHORT);
  return false;
}

export function endShortCall(view: ControlView, rank: number): void {
  const base = checkRank(view, rank);
  Atomics.store(view.i32, base + R_SHORT, 0);
  Atomics.notify(view.i32, base + R_SHORT);
}

/** Aborter side of the handshake; blocks (off the main thread) until no short call is running. */
export function awaitShortCalls(view: ControlView, rank: number, waitMs: number): boolean {
  const base = checkRank(view, rank);
  const deadline = Date.now() + waitMs;
  while (Atomics.load(view.i32, base + R_SHORT) !== 0) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    Atomics.wait(view.i32, base + R_SHORT, 1, left);
  }
  return true;
}

/** Sleeps the rank's thread until its state leaves `expected` or `ms` pass (a poll loop's pause that an abort cuts short). */
export function sleepOnState(view: ControlView, rank: number, expected: RankStateName, ms: number): void {
  Atomics.wait(view.i32, checkRank(view, rank) + R_STATE, RANK_STATE[expected], ms);
}

/** The step first, then the phase, then a wake-up for `phaseReached` (a notify nobody waits on costs next to nothing). */
export function setPhase(view: ControlView, rank: number, phase: RankPhaseName, step?: number): void {
  const base = checkRank(view, rank);
  if (step !== undefined) Atomics.store(view.i32, base + R_STEP, step);
  Atomics.store(view.i32, base + R_PHASE, RANK_PHASE[phase]);
  Atomics.notify(view.i32, base + R_PHASE);
}

/**
 * Resolves once `rank` is in `phase` for `step` (as a snapshot would show
 * it), woken by setPhase: for the main thread, which must never block on a
 * rank, to wait for one to reach a point (a test, a diagnostic).
 */
export async function phaseReached(
  view: ControlView,
  rank: number,
  phase: RankPhaseName,
  step: number,
): Promise<void> {
  const base = checkRank(view, rank);
  for (;;) {
    const current = Atomics.load(view.i32, base + R_PHASE);
    if (current === RANK_PHASE[phase] && Atomics.load(view.i32, base + R_STEP) === step) return;
    const waited = Atomics.waitAsync(view.i32, base + R_PHASE, current);
    if (waited.async) await waited.value;
  }
}

/** Counts collectives a rank has entered; a rank whose count lags the others is the one that never joined. */
export function bumpSequence(view: ControlView, rank: number): number {
  return Atomics.add(view.i32, checkRank(view, rank) + R_SEQ, 1) + 1;
}

export interface RankSnapshot {
  rank: number;
  state: RankStateName;
  phase: RankPhaseName;
  /** Collectives entered so far. */
  seq: number;
  /** Last step number the rank reported. */
  step: number;
  lastError: number;
}

/** Reads every rank's state without blocking; safe on the main thread while ranks are wedged. */
export function snapshotRanks(view: ControlView): RankSnapshot[] {
  const out: RankSnapshot[] = [];
  for (let rank = 0; rank < view.size; rank++) {
    const base = rankBase(rank);
    out.push({
      rank,
      state: stateName(Atomics.load(view.i32, base + R_STATE)),
      phase: phaseName(Atomics.load(view.i32, base + R_PHASE)),
      seq: Atomics.load(view.i32, base + R_SEQ),
      step: Atomics.load(view.i32, base + R_STEP),
      lastError: Atomics.load(view.i32, base + R_ERROR),
    });
  }
  return out;
}
