/**
 * Whether a chat template supports thinking, decided as llama-server
 * decides the `enable_thinking` it renders with when the request does not
 * say (server-context.cpp: `common_chat_templates_support_enable_thinking`,
 * common/chat.cpp): a template llama.cpp has a dedicated handler for gets
 * that handler's answer; any other goes through the reasoning phase of its
 * differential analysis (common/chat-diff-analyzer.cpp), which renders the
 * template with probe messages and looks for reasoning markers:
 *
 * - presence: an assistant turn with `reasoning_content` prints it followed
 *   by a marker (`<…>` or `[…]`);
 * - thinking enabled: `enable_thinking` true vs false changes the
 *   generation prompt's tail (the diff is llama.cpp's marker-aware split);
 * - scope: reasoning printed only beside tool calls (templates that read
 *   `tool_calls`; llama.cpp asks its Jinja engine whether the template used
 *   them, we ask the source whether it names them);
 *
 * then the analysis's own per-template overrides (old Qwen, Granite 3.3,
 * Nemotron Nano v2). Apertus, whose "Deliberation: enabled" line is none of
 * these, renders with thinking off, as in llama.cpp. All text comparisons
 * are over UTF-8 bytes, as in llama.cpp. Pure, given the render function.
 */

import { type LlamaCppFamily, llamaCppFamily } from "./llama-cpp-family.ts";

/** Renders the template with a context (llama.cpp's direct apply); undefined where the template failed. */
export type ProbeRender = (context: Record<string, unknown>) => string | undefined;

const USER_MSG = "U_USER_MSG Hello END_U";
const ASSISTANT_MSG = "A_ASST_MSG I can help END_A";
const THINKING_CONTENT = "REASON_PART I am thinking END_R";
const FUN_FIRST = "FFF_FIRST_FUN_F";
const FUN_SECOND = "SSS_SECOND_FUN_S";
const ARG_FIRST = "AA_ARG_FST_AA";
const ARG_SECOND = "BB_ARG_SND_BB";

const paramsSchema = {
  type: "object",
  properties: {
    [ARG_FIRST]: { type: "string", description: "First argument" },
    [ARG_SECOND]: { type: "string", description: "Second argument" },
  },
  required: [],
};
const probeTools = [
  {
    type: "function",
    function: { name: FUN_FIRST, description: "Test function foo", parameters: paramsSchema },
  },
  {
    type: "function",
    function: { name: FUN_SECOND, description: "Test function bar", parameters: paramsSchema },
  },
];
const user = { role: "user", content: USER_MSG };

/** What each dedicated handler says (common/parsers/): all think but Functionary v3.2 and GigaChat V3; Qwen3-Coder's kin where they know `<think>`. */
function familyThinks(family: LlamaCppFamily, src: string): boolean {
  if (family === "functionary-v3.2" || family === "gigachat-v3") return false;
  if (family === "qwen3-coder") return src.includes("<think>");
  return true;
}

/** llama-server's default `enable_thinking` for this template. */
export function supportsThinking(src: string, render: ProbeRender): boolean {
  const family = llamaCppFamily(src);
  if (family !== undefined) return familyThinks(family, src);
  const bytes: ProbeRender = (context) => {
    const text = render(context);
    return text === undefined ? undefined : toBytes(text);
  };
  const analysed =
    reasoningPresent(bytes) ||
    thinkingToggles(bytes) ||
    (src.includes("tool_calls") && reasoningOnlyWithTools(bytes));
  if (analysed) return true;
  // The analysis's overrides that turn reasoning on.
  if (
    src.includes("content.split('</think>')") &&
    !src.includes("reasoning_content") &&
    !src.includes("<SPECIAL_12>")
  )
    return true;
  if (
    src.includes(
      "Write your thoughts between <think></think> and write your response between <response></response>",
    )
  )
    return true;
  return ["<SPECIAL_10>", "<SPECIAL_11>", "<SPECIAL_12>", "<TOOL_RESPONSE>"].every((t) => src.includes(t));
}

/** Each UTF-16 unit one byte of the UTF-8 text, so lengths and offsets are llama.cpp's. */
function toBytes(text: string): string {
  return Buffer.from(text, "utf8").toString("latin1");
}

const SPACE = "[ \\t\\n\\v\\f\\r]*";
const MARKER = "(?:<[^>]*>|\\[[^\\]]*\\])";

/** Presence: reasoning in an assistant turn is printed and closed by a marker. */
function reasoningPresent(render: ProbeRender): boolean {
  const context = { messages: [user, { role: "assistant", content: ASSISTANT_MSG }], enable_thinking: true };
  const without = render(context);
  const withReasoning = render({
    ...context,
    messages: [user, { role: "assistant", content: ASSISTANT_MSG, reasoning_content: THINKING_CONTENT }],
  });
  if (without === undefined || withReasoning === undefined) return false;
  return new RegExp(`${THINKING_CONTENT}${SPACE}${MARKER}`).test(withReasoning);
}

/** Thinking enabled: the generation prompt's tail changes by a marker (or two) with `enable_thinking`. */
function thinkingToggles(render: ProbeRender): boolean {
  const context = { messages: [user], add_generation_prompt: true };
  const off = render({ ...context, enable_thinking: false });
  const on = render({ ...context, enable_thinking: true });
  if (off === undefined || on === undefined) return false;
  const diff = diffSplit(off, on);
  const left = trimSpace(diff.left);
  const right = trimSpace(diff.right);
  if (left === "" && diff.right !== "") return right !== "" && on.endsWith(right);
  if (right === "" && diff.left !== "") return left !== "" && off.endsWith(left);
  if (left === "" || right === "") return false;
  // Noisy diffs (a system line that changes too): one output's tail followed by two markers in the other.
  for (const [base, extended] of [
    [on, off],
    [off, on],
  ] as const) {
    const anchor = base.slice(base.length - Math.min(base.length, 64));
    const at = extended.lastIndexOf(anchor);
    if (at < 0 || at + anchor.length >= extended.length) continue;
    const extra = trimSpace(extended.slice(at + anchor.length));
    if (extra === "") continue;
    const segments = segmentize(extra).filter((s) => trimSpace(s.value) !== "");
    if (segments.length === 2 && segments.every((s) => s.marker)) return true;
  }
  return false;
}

/** Scope: reasoning printed beside tool calls only. */
function reasoningOnlyWithTools(render: ProbeRender): boolean {
  const context = { tools: probeTools, enable_thinking: true };
  const plain = render({
    ...context,
    messages: [user, { role: "assistant", content: ASSISTANT_MSG, reasoning_content: THINKING_CONTENT }],
  });
  const call = {
    id: "call00001",
    type: "function",
    function: { name: FUN_FIRST, arguments: { [ARG_FIRST]: "VVVV", [ARG_SECOND]: "XXXX" } },
  };
  const withTools = render({
    ...context,
    messages: [
      user,
      { role: "assistant", content: null, reasoning_content: THINKING_CONTENT, tool_calls: [call] },
    ],
  });
  if (plain === undefined || withTools === undefined) return false;
  return !plain.includes(THINKING_CONTENT) && withTools.includes(THINKING_CONTENT);
}

interface Segment {
  marker: boolean;
  value: string;
}

/** llama.cpp's `segmentize_markers`: text, and `<…>` / `[…]` markers. */
export function segmentize(text: string): Segment[] {
  const out: Segment[] = [];
  let opener = "";
  let border = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (opener === "" && (c === "<" || c === "[")) {
      if (border < i) out.push({ marker: false, value: text.slice(border, i) });
      border = i;
      opener = c;
    } else if ((opener === "<" && c === ">") || (opener === "[" && c === "]")) {
      out.push({ marker: true, value: text.slice(border, i + 1) });
      border = i + 1;
      opener = "";
    }
  }
  if (border < text.length) out.push({ marker: false, value: text.slice(border) });
  return out;
}

function trimSpace(text: string): string {
  return text.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, "");
}

const same = (a: Segment | undefined, b: Segment | undefined) =>
  a !== undefined && b !== undefined && a.marker === b.marker && a.value === b.value;

/** llama.cpp's `calculate_diff_split`: what differs between two renders, markers kept whole. */
export function diffSplit(left: string, right: string): { left: string; right: string } {
  const l = segmentize(left);
  const r = segmentize(right);
  if (l.length === 0) return { left: "", right };
  if (r.length === 0) return { left, right: "" };
  let ls = 0;
  let le = l.length - 1;
  let rs = 0;
  let re = r.length - 1;
  let leftDone = false;
  let rightDone = false;
  while (ls !== le && rs !== re) {
    let advanced = false;
    if (same(l[ls], r[rs])) {
      ls++;
      rs++;
      advanced = true;
    }
    if (same(l[le], r[re])) {
      if (ls !== le) le--;
      else leftDone = true;
      if (rs !== re) re--;
      else rightDone = true;
      advanced = true;
    }
    if (!advanced) break;
  }
  if (ls === le && rs !== re) {
    if (same(l[ls], r[re])) {
      re--;
      leftDone = true;
    } else if (same(l[ls], r[rs])) {
      rs++;
      leftDone = true;
    }
  } else if (rs === re && ls !== le) {
    if (same(l[le], r[rs])) {
      le--;
      rightDone = true;
    } else if (same(l[ls], r[rs])) {
      ls++;
      rightDone = true;
    }
  } else if (ls === le && rs === re && same(l[ls], r[rs]) && l[ls]?.marker) {
    leftDone = true;
    rightDone = true;
  }
  const textSuffix = l[le]?.marker === false && r[re]?.marker === false;
  const textPrefix = r[rs]?.marker === false && l[ls]?.marker === false;
  const join = (segments: Segment[], from: number, to: number) =>
    segments
      .slice(from, to)
      .map((s) => s.value)
      .join("");
  const restLeft = join(l, ls, leftDone ? le : le + 1);
  const restRight = join(r, rs, rightDone ? re : re + 1);
  const suffixLength = textSuffix ? commonSuffix(restLeft, restRight) : 0;
  const prefixLength = textPrefix
    ? commonPrefix(
        restLeft.slice(0, restLeft.length - suffixLength),
        restRight.slice(0, restRight.length - suffixLength),
      )
    : 0;
  const diff = {
    left: restLeft.slice(prefixLength, restLeft.length - suffixLength),
    right: restRight.slice(prefixLength, restRight.length - suffixLength),
  };
  // Left wholly shared with right: the diff is what right adds.
  if (diff.left === "" && diff.right !== "" && right.startsWith(left))
    return { left: "", right: right.slice(left.length) };
  return diff;
}

function commonPrefix(a: string, b: string): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

function commonSuffix(a: string, b: string): number {
  let n = 0;
  while (n < a.length && n < b.length && a[a.length - 1 - n] === b[b.length - 1 - n]) n++;
  return n;
}
