/**
 * What the dashboard shows of past requests: the last few hundred as a tail
 * (newest first) and the per-model time series over the last 15 minutes.
 * Fed once per finished chat request by the chat pipeline, beside the
 * metrics and the request log; the gateway owns one.
 */
import type { RecentRequest } from "../../core/admin-api.ts";
import {
  RequestTimeSeries,
  type RequestTimeSeriesOptions,
  type SeriesSnapshot,
} from "./request-timeseries.ts";

/** Client-given strings (request ids, model names) are cut to this many characters. */
const MAX_TEXT = 200;

export class RequestHistory {
  readonly #tail: Array<RecentRequest | undefined>;
  #next = 0;
  #count = 0;
  readonly #series: RequestTimeSeries;
  readonly #now: () => number;

  constructor(options: RequestTimeSeriesOptions & { tailSize?: number; now?: () => number } = {}) {
    this.#tail = new Array(options.tailSize ?? 500);
    this.#series = new RequestTimeSeries(options);
    this.#now = options.now ?? Date.now;
  }

  /** `seriesModel` is the bounded name the series files it under (a profile id, or "unknown"). */
  record(request: Omit<RecentRequest, "at">, seriesModel: string): void {
    const at = this.#now();
    const entry: RecentRequest = {
      ...request,
      at,
      requestId: request.requestId.slice(0, MAX_TEXT),
      model: request.model.slice(0, MAX_TEXT),
    };
    this.#tail[this.#next] = entry;
    this.#next = (this.#next + 1) % this.#tail.length;
    this.#count = Math.min(this.#count + 1, this.#tail.length);
    this.#series.add({
      model: seriesModel,
      atMs: at,
      ok: request.status < 400,
      generatedTokens: request.generatedTokens ?? 0,
      promptTokens: request.promptTokens ?? 0,
      ...(request.ttftMs === undefined ? {} : { ttftMs: request.ttftMs }),
    });
  }

  /** The newest `limit` requests, newest first. */
  recent(limit: number): RecentRequest[] {
    const out: RecentRequest[] = [];
    const size = this.#tail.length;
    for (let i = 1; i <= Math.min(limit, this.#count); i++) {
      const entry = this.#tail[(this.#next - i + size) % size];
      if (entry !== undefined) out.push(entry);
    }
    return out;
  }

  series(): SeriesSnapshot {
    return this.#series.snapshot(this.#now());
  }
}
