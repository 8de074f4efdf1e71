/**
 * Forms a tensor-parallel group over rank ports (leader first): creates the
 * control block, fetches the ncclUniqueId from the leader (nccl), joins every
 * rank concurrently and returns the handles for the watchdog to cache. The
 * handles exist before any rank answers, so a formation that hangs can be
 * aborted like a step.
 */
import { CortexError } from "../../core/errors.ts";
import { within } from "../../core/within.ts";
import { type CommunicatorHandle, type CommunicatorInit, groupHandles } from "./communicator.ts";
import { type CommunicatorBackendName, createControlBlock } from "./control-block.ts";
import type { RankPort } from "./rank-client.ts";

export interface FormGroupOptions {
  groupId: string;
  backend: CommunicatorBackendName;
  ports: readonly RankPort[];
  /** nccl: the library every rank loads (findNcclLibrary). */
  libraryPath?: string;
  /** nccl: "cuda" on real devices, "host" with the stand-in library. */
  memory?: "cuda" | "host";
  /** nccl: CUDA ordinal per rank. */
  deviceOrdinals?: readonly number[];
  faults?: string;
  timeoutMs?: number;
}

export interface FormedGroup {
  control: SharedArrayBuffer;
  handles: CommunicatorHandle[];
}

export async function formGroup(options: FormGroupOptions): Promise<FormedGroup> {
  const size = options.ports.length;
  const control = createControlBlock(size, options.backend);
  const handles = groupHandles({
    backend: options.backend,
    groupId: options.groupId,
    size,
    control,
    ...(options.libraryPath === undefined ? {} : { libraryPath: options.libraryPath }),
  });
  const leader = options.ports[0];
  if (!leader) throw new CortexError("invalid_request", "a tensor-parallel group needs at least one rank");
  let uniqueId: Uint8Array | undefined;
  if (options.backend === "nccl") {
    if (!options.libraryPath) throw new CortexError("unavailable", "nccl group without a libnccl path");
    uniqueId = (await leader.request({
      type: "tp-unique-id",
      libraryPath: options.libraryPath,
    })) as Uint8Array;
  }
  const initFor = (rank: number): CommunicatorInit =>
    options.backend === "shm"
      ? { backend: "shm", groupId: options.groupId, rank, control }
      : {
          backend: "nccl",
          groupId: options.groupId,
          rank,
          control,
          uniqueId: uniqueId!,
          libraryPath: options.libraryPath!,
          memory: options.memory ?? "cuda",
          ...(options.deviceOrdinals?.[rank] === undefined ? {} : { device: options.deviceOrdinals[rank] }),
          ...(options.timeoutMs === undefined ? {} : { initTimeoutMs: options.timeoutMs }),
        };
  const joins = options.ports.map((port, rank) =>
    port.request({ type: "tp-join", init: initFor(rank), faults: options.faults ?? "" }),
  );
  await within(
    Promise.all(joins),
    options.timeoutMs ?? 120_000,
    () => new CortexError("timeout", `tensor-parallel group ${options.groupId} did not form in time`),
  );
  return { control, handles };
}
