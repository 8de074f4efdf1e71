/** Pure renderers for model pulls: `cortex models pull`'s progress lines and `cortex status`'s pull table. */
import { formatBytes } from "../core/config/parse-size.ts";
import type { NodePulls, PullStatus } from "../core/pull-api.ts";
import { formatDuration, memoryBar, table } from "./render-status.ts";

function percent(status: PullStatus): string {
  if (status.bytesTotal <= 0) return status.state === "done" ? "100%" : "  0%";
  return `${Math.floor((status.bytesDone / status.bytesTotal) * 100)}%`.padStart(4);
}

/** One node's pull on one line: `n1  [####......]  42%  1.1 MiB / 2.6 MiB  3.0 MiB/s  ETA 1s  downloading tiny.gguf`. */
export function renderPullLine(node: string, status: PullStatus | undefined, error?: string): string {
  if (status === undefined) return `${node}  failed: ${error ?? "no pull"}`;
  const file = (status.current ?? status.model ?? status.source).split("/").at(-1) ?? "";
  const head = `${node}  ${memoryBar(status.bytesDone, status.bytesTotal)} ${percent(status)}  ${formatBytes(status.bytesDone)} / ${formatBytes(status.bytesTotal)}`;
  switch (status.state) {
    case "resolving":
      return `${node}  resolving ${status.source}`;
    case "downloading":
    case "verifying":
      return `${head}  ${formatBytes(status.rate)}/s${status.etaS === undefined ? "" : `  ETA ${formatDuration(status.etaS * 1000)}`}  ${status.state} ${file}`;
    case "done":
      return `${head}  done: ${status.model ?? file}${status.files.every((f) => f.present) ? " (already present)" : ""}`;
    case "failed":
      return `${node}  failed: ${status.error ?? "unknown error"}`;
    default: {
      const never: never = status.state;
      return never;
    }
  }
}

/** `cortex status`: pulls not finished yet, one row per node and pull; "" when there are none. */
export function renderPullsInFlight(nodes: readonly NodePulls[]): string {
  const rows = nodes.flatMap((node) =>
    node.pulls
      .filter((pull) => pull.state !== "done" && pull.state !== "failed")
      .map((pull) => [
        node.node,
        pull.source,
        pull.state,
        `${percent(pull).trim()} of ${formatBytes(pull.bytesTotal)}`,
        `${formatBytes(pull.rate)}/s`,
        pull.etaS === undefined ? "-" : formatDuration(pull.etaS * 1000),
      ]),
  );
  if (rows.length === 0) return "";
  return table(["PULL", "SOURCE", "STATE", "DONE", "RATE", "ETA"], rows);
}
