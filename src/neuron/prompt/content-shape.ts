/**
 * Message content in the shape a template takes it, as llama.cpp decides
 * (common/jinja/caps.cpp's typed-content probe; chat.cpp's
 * messages_inp_normalizer): a template that treats `content` as a list of
 * parts (iterates it, indexes it, `selectattr`s it) takes typed content; one
 * that fails on a string, or reads it as a list without printing it, does
 * not take string content. A message sent as a list of text parts (the
 * multimodal shape) then reaches the template as that list, unless it
 * takes strings only (the parts joined by newlines); a template that takes
 * typed content only gets every string as one text part. Pure, given the
 * render function.
 */

export interface ContentCaps {
  string: boolean;
  typed: boolean;
}

/** Renders with these messages, recording in `ops` what the template did with the first one's content; undefined where it failed. */
export type ContentProbe = (messages: unknown[], ops: Set<string>) => string | undefined;

const MARKER = "STRING_MARKER";
const usedAsList = (ops: Set<string>) => ops.has("selectattr") || ops.has("array_access");

export function contentCaps(render: ContentProbe): ContentCaps {
  const caps = { string: true, typed: false };
  const ops = new Set<string>();
  const text = render([{ role: "user", content: MARKER }], ops);
  if (usedAsList(ops)) caps.typed = true;
  // Failed on a string, or looked at it as a list and never printed it.
  if (text === undefined || (usedAsList(ops) && !text.includes(MARKER))) caps.string = false;
  if (ops.has("test_is_string")) {
    // It tells strings apart: does it read a list when it gets one?
    const listOps = new Set<string>();
    if (render([{ role: "user", content: [] }], listOps) !== undefined && usedAsList(listOps))
      caps.typed = true;
  }
  return caps;
}

/** A message as the template gets it; `textParts` (the content's parts, when it came as a list) never reaches it. */
export function shapeContent<M extends { content?: string; textParts?: readonly string[] }>(
  messages: readonly M[],
  caps: ContentCaps,
): unknown[] {
  const onlyString = caps.string && !caps.typed;
  const onlyTyped = !caps.string && caps.typed;
  return messages.map(({ textParts, ...message }) => {
    if (textParts !== undefined && !onlyString)
      return { ...message, content: textParts.map((text) => ({ type: "text", text })) };
    if (onlyTyped && typeof message.content === "string")
      return { ...message, content: [{ type: "text", text: message.content }] };
    return message;
  });
}
