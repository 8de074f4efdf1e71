/**
 * The pull contract (docs/MODELS-PULL.md): a neuron's `/models/pull`,
 * `/models/pulls` and `/models/remove`, and the gateway's `/admin/models/pull`,
 * `/admin/models/pulls` and `/admin/models/rm` built on them.
 */
import { z } from "zod";

export const PullState = z.enum(["resolving", "downloading", "verifying", "done", "failed"]);
export type PullState = z.infer<typeof PullState>;

export const PullFile = z.object({
  /** Relative to the models directory (`org/repo/path.gguf`). */
  file: z.string(),
  bytesTotal: z.number(),
  bytesDone: z.number(),
  /** Already on disk, complete: nothing was downloaded. */
  present: z.boolean().default(false),
});
export type PullFile = z.infer<typeof PullFile>;

export const PullStatus = z.object({
  id: z.string(),
  /** The source as asked for, in canonical spelling. */
  source: z.string(),
  state: PullState,
  /** The file to load (a split model's first part); known once resolved. */
  model: z.string().optional(),
  files: z.array(PullFile),
  /** The file being downloaded now. */
  current: z.string().optional(),
  bytesDone: z.number(),
  bytesTotal: z.number(),
  /** Bytes per second over the last few seconds. */
  rate: z.number(),
  /** Seconds left at that rate; absent when unknown. */
  etaS: z.number().optional(),
  startedAt: z.number(),
  finishedAt: z.number().optional(),
  error: z.string().optional(),
});
export type PullStatus = z.infer<typeof PullStatus>;

export const PullRequest = z.object({ source: z.string().min(1) });
export type PullRequest = z.infer<typeof PullRequest>;

export const PullsResponse = z.object({ pulls: z.array(PullStatus) });

export const RemoveRequest = z.object({ file: z.string().min(1) });
export type RemoveRequest = z.infer<typeof RemoveRequest>;
export const RemoveResponse = z.object({ removed: z.array(z.string()) });

/** `POST /admin/models/pull`: a source, or a profile whose `source` to pull; on named nodes or all. */
export const AdminPullRequest = z
  .object({
    source: z.string().min(1).optional(),
    profile: z.string().min(1).optional(),
    nodes: z.array(z.string().min(1)).optional(),
  })
  .refine((body) => (body.source === undefined) !== (body.profile === undefined), {
    message: "expected exactly one of source or profile",
  });
export type AdminPullRequest = z.infer<typeof AdminPullRequest>;

export const NodePulls = z.object({
  node: z.string(),
  pulls: z.array(PullStatus),
  error: z.string().optional(),
});
export type NodePulls = z.infer<typeof NodePulls>;

export const AdminPullResponse = z.object({
  ok: z.boolean(),
  message: z.string(),
  /** One entry per node asked: the pull it started (or joined), or why it refused. */
  nodes: z.array(z.object({ node: z.string(), pull: PullStatus.optional(), error: z.string().optional() })),
});
export type AdminPullResponse = z.infer<typeof AdminPullResponse>;

export const AdminPullsResponse = z.object({ nodes: z.array(NodePulls) });
export type AdminPullsResponse = z.infer<typeof AdminPullsResponse>;
