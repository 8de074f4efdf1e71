/** An error ready to send: HTTP status, extra headers (retry-after) and the dialect's JSON body. */
export interface RenderedError<Body> {
  status: number;
  headers: Record<string, string>;
  body: Body;
}
