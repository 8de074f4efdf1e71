import type { CanonicalRequest, ImageSource } from "./canonical.ts";

const DATA_URL = /^data:([^;,]+)((?:;[^;,]*)*);base64,(.*)$/s;

/** Reads an OpenAI `image_url.url`: a base64 data URL becomes inline data, anything else stays a URL. */
export function imageSourceFromUrl(url: string): ImageSource {
  const match = DATA_URL.exec(url);
  if (match) return { kind: "base64", mediaType: match[1] ?? "", data: match[3] ?? "" };
  return { kind: "url", url };
}

/** The OpenAI `image_url.url` for a canonical image: inline data as a data URL. */
export function imageSourceToUrl(source: ImageSource): string {
  return source.kind === "url" ? source.url : `data:${source.mediaType};base64,${source.data}`;
}

/** True when any user turn or tool result carries an image. */
export function requestHasImages(req: Pick<CanonicalRequest, "messages">): boolean {
  return req.messages.some((message) =>
    message.content.some(
      (part) =>
        part.type === "image" ||
        (part.type === "tool_result" && part.content.some((inner) => inner.type === "image")),
    ),
  );
}
