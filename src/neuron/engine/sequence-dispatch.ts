/**
 * Generation requests on their way to a device Worker: admission to the
 * model's slots (admission.ts) or its wait queue, the sequence's stream with
 * cancel and flow control wired to the Worker, and handing a freed slot to
 * the next queued request. The model's counters live on its registry entry.
 */
import { CortexError } from "../../core/errors.ts";
import { needsParser } from "../tool-formats/output-format.ts";
import { outputTransform } from "../tool-formats/output-transform.ts";
import { admit, refusalRetryAfterS, type SlotCounts, takeRunnable } from "./admission.ts";
import type { ActiveSequence, DeviceHandle } from "./device-handle.ts";
import { type ModelEntry, type QueuedRequest, wakeIdle } from "./model-registry.ts";
import { SequenceStream } from "./sequence-stream.ts";
import type { GenerateParams, GenerationEvent } from "./types.ts";

export interface DispatchHost {
  device(id: string): DeviceHandle | undefined;
  /** A tensor-parallel model needs a step (no-op for a single device, whose Worker steps on its own). */
  kick(model: ModelEntry): void;
  /** A model's running or queued count changed. */
  changed(): void;
  /** A sequence's reader fell behind and the Worker was told to pause it (flow control). */
  paused?(model: ModelEntry): void;
  /**
   * neuron.stall_timeout_s in ms: a sequence paused this long for its reader
   * is ended, to free its slot, with an error event after what was buffered.
   * Undefined: paused for as long as the reader takes.
   */
  stallTimeoutMs?: number;
}

let nextSeqKey = 1;
let nextCallPrefix = 1;

function slotCounts(model: ModelEntry): SlotCounts {
  return {
    inFlight: model.inFlight,
    queued: model.queue.length,
    slots: model.info.slots,
    maxQueue: model.maxQueue,
  };
}

export class SequenceDispatch {
  readonly #host: DispatchHost;

  constructor(host: DispatchHost) {
    this.#host = host;
  }

  /** Admits a request to `model` on `device` (see DevicePool.generate); throws when it cannot. */
  start(
    model: ModelEntry,
    device: DeviceHandle,
    params: GenerateParams,
    signal?: AbortSignal,
  ): ReadableStream<GenerationEvent> {
    const id = model.info.id;
    if (device.poisonReason)
      throw new CortexError(
        "device_fault",
        `model ${id} is unavailable: ${device.poisonReason}; its device is being recycled and the model will load again on demand`,
        { retryAfterS: model.group ? 5 : 1 },
      );
    if (model.state !== "ready")
      throw new CortexError(
        "unavailable",
        `model ${id} is ${model.state}${model.error ? ` (${model.error})` : ""}`,
        {
          retryAfterS: 1,
        },
      );
    const counts = slotCounts(model);
    const admission = admit(counts);
    if (admission === "refuse")
      throw new CortexError(
        "rate_limited",
        `model ${id} is busy: ${model.inFlight} running, ${model.queue.length} waiting`,
        {
          retryAfterS: refusalRetryAfterS(counts),
        },
      );
    signal?.throwIfAborted();
    const seqKey = nextSeqKey++;
    let stall: ReturnType<typeof setTimeout> | undefined;
    // The output parser counts one text event as one token (reasoning tokens): it gets them unjoined.
    const parsed = params.output !== undefined && needsParser(params.output);
    const channel: SequenceStream = new SequenceStream(
      () => {
        clearTimeout(stall);
        this.#cancel(model, seqKey);
      },
      (pause) => {
        clearTimeout(stall);
        const worker = this.#host.device(model.deviceId);
        if (worker?.sequences.has(seqKey) && !worker.closed) {
          worker.post({ type: pause ? "pause" : "resume", seqKey });
          if (pause) this.#host.paused?.(model);
          else this.#host.kick(model);
        }
        const stallMs = this.#host.stallTimeoutMs;
        if (pause && stallMs !== undefined)
          stall = setTimeout(() => this.#stalled(model, seqKey, channel, stallMs), stallMs);
      },
      { joinText: !parsed },
    );
    const request: QueuedRequest = { seqKey, params, channel };
    model.lastUsed = Date.now();
    if (admission === "run") this.#dispatch(model, device, request);
    else {
      model.queue.push(request);
      this.#host.changed();
    }
    signal?.addEventListener(
      "abort",
      () => {
        this.#cancel(model, seqKey);
        channel.fail(signal.reason);
      },
      { once: true },
    );
    if (!parsed || params.output === undefined) return channel.stream;
    return channel.stream.pipeThrough(outputTransform(`call_${nextCallPrefix++}_`, params.output));
  }

  /** A sequence of the model ended: its slot goes to the next queued request, or the model may be idle. */
  ended(model: ModelEntry): void {
    model.inFlight--;
    model.lastUsed = Date.now();
    const device = this.#host.device(model.deviceId);
    if (device && !device.poisonReason && !device.closed)
      for (const next of takeRunnable(model.queue, slotCounts(model), (q) => q.channel.ended))
        this.#dispatch(model, device, next);
    if (model.inFlight === 0 && model.queue.length === 0) wakeIdle(model);
    this.#host.changed();
  }

  #dispatch(model: ModelEntry, device: DeviceHandle, request: QueuedRequest): void {
    model.inFlight++;
    const active: ActiveSequence = { model, channel: request.channel };
    device.sequences.set(request.seqKey, active);
    device.post({ type: "submit", seqKey: request.seqKey, modelId: model.info.id, params: request.params });
    this.#host.kick(model);
    this.#host.changed();
  }

  /** A slow reader held its slot for the whole stall time: the slot goes, the reader gets why after its buffer. */
  #stalled(model: ModelEntry, seqKey: number, channel: SequenceStream, stallMs: number): void {
    if (channel.ended) return;
    this.#cancel(model, seqKey);
    channel.push({
      type: "error",
      error: new CortexError(
        "timeout",
        `the client fell behind reading this answer for neuron.stall_timeout_s (${stallMs / 1000} s); it was ended to free its slot for others`,
      ).toWire(),
    });
  }

  #cancel(model: ModelEntry, seqKey: number): void {
    const queuedAt = model.queue.findIndex((q) => q.seqKey === seqKey);
    if (queuedAt >= 0) {
      model.queue.splice(queuedAt, 1);
      this.#host.changed();
      return;
    }
    const device = this.#host.device(model.deviceId);
    if (device?.sequences.has(seqKey) && !device.closed) {
      device.post({ type: "cancel", seqKey });
      this.#host.kick(model);
    }
  }
}
