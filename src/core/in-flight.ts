/**
 * Requests in progress, counted from their start to the end of their
 * response body (a stream counts until its last byte is read or the client
 * cancels it), so a draining server knows when its last answer is out.
 */
export class InFlight {
  #count = 0;
  #idle: Array<() => void> = [];

  get size(): number {
    return this.#count;
  }

  /** Counts one request; the returned function ends it (idempotent). */
  begin(): () => void {
    this.#count++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#count--;
      if (this.#count === 0) for (const resolve of this.#idle.splice(0)) resolve();
    };
  }

  /** Resolves when no request is in progress (now, if none is). */
  untilIdle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Ends `end` when `response` has been sent: at once for a body that is not
   * a stream, or when the stream closes, fails or is cancelled by the client.
   */
  static untilSent(response: Response, end: () => void): Response {
    const body = response.body;
    if (body === null || !(response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
      end();
      return response;
    }
    const reader = body.getReader();
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            end();
            controller.close();
          } else controller.enqueue(value);
        } catch (error) {
          end();
          controller.error(error);
        }
      },
      cancel(reason) {
        end();
        return reader.cancel(reason);
      },
    });
    return new Response(stream, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }
}
