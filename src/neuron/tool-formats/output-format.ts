/**
 * The parser for one model's output: its tool-call syntax, wrapped in its
 * reasoning split. Plain data in (what the chat template taught, the
 * request's tools), a pure incremental parser out.
 */
import type { ReasoningSyntax, ToolCallSyntax } from "../../core/grammar/tool-call-syntax.ts";
import { DeepSeekParser, MistralParser } from "./marker-calls.ts";
import { Gemma4Parser } from "./gemma4.ts";
import { HarmonyParser } from "./harmony.ts";
import { GENERIC, HERMES, JsonCallsParser, LLAMA3 } from "./json-calls.ts";
import type { OutputParser, ParsedEvent } from "./output-parser.ts";
import { GEMMA4_THOUGHT, type ReasoningMarkers, ReasoningSplitter, THINK } from "./reasoning.ts";
import { stringParams, type ToolSchema } from "./tool-schemas.ts";
import { GLM, QWEN3_CODER, XmlCallsParser } from "./xml-calls.ts";

/** What the neuron knows about a request's output before generating it (crosses to the engine as plain data). */
export interface OutputFormat {
  tools: ToolCallSyntax;
  reasoning: ReasoningSyntax;
  /** Parse calls at all (the request has tools and did not say `none`). */
  parseCalls: boolean;
  /** The request's tools, for formats that write parameters bare. */
  schemas: ToolSchema[];
  /** The prompt ends inside an open reasoning block (the template opened it). */
  reasoningOpen: boolean;
}

const MISTRAL_THINK: ReasoningMarkers = { open: "[THINK]", close: "[/THINK]" };

function callParser(format: OutputFormat): OutputParser {
  const names = new Set(format.schemas.map((tool) => tool.name));
  switch (format.tools) {
    case "hermes":
      return new JsonCallsParser(HERMES, names);
    case "generic":
      return new JsonCallsParser(GENERIC, names);
    case "llama3":
      return new JsonCallsParser(LLAMA3, names);
    case "qwen3-coder":
      return new XmlCallsParser(QWEN3_CODER, stringParams(format.schemas));
    case "glm":
      return new XmlCallsParser(GLM, stringParams(format.schemas));
    case "deepseek-r1":
    case "deepseek-v3":
      return new DeepSeekParser();
    case "mistral":
    case "mistral-json":
      return new MistralParser();
    case "gemma4":
      return new Gemma4Parser();
    case "harmony":
      return new HarmonyParser();
  }
}

/** Passes text through: a request without tools, for a model without reasoning markers. */
class PlainText implements OutputParser {
  push(text: string): ParsedEvent[] {
    return text === "" ? [] : [{ type: "text", text }];
  }
  end(): ParsedEvent[] {
    return [];
  }
}

export function outputParser(format: OutputFormat): OutputParser {
  // Harmony's channels are the answer's structure, tools or not.
  const answer = format.parseCalls || format.tools === "harmony" ? callParser(format) : new PlainText();
  switch (format.reasoning) {
    case "think":
      return new ReasoningSplitter(THINK, answer, format.reasoningOpen);
    case "mistral-think":
      return new ReasoningSplitter(MISTRAL_THINK, answer, format.reasoningOpen);
    case "gemma4-thought":
      return new ReasoningSplitter(GEMMA4_THOUGHT, answer, format.reasoningOpen);
    case "harmony":
    case "none":
      return answer;
  }
}

/** Whether the output needs a parser at all. */
export function needsParser(format: OutputFormat): boolean {
  return format.parseCalls || format.tools === "harmony" || format.reasoning !== "none";
}

/** Whether a rendered prompt leaves the model inside a reasoning block it must close. */
export function promptOpensReasoning(prompt: string, reasoning: ReasoningSyntax): boolean {
  const tail = prompt.trimEnd();
  if (reasoning === "think") return tail.endsWith("<think>");
  if (reasoning === "mistral-think") return tail.endsWith("[THINK]");
  if (reasoning === "gemma4-thought") return tail.endsWith("<|channel>thought");
  return false;
}

/** The markers each format's parser reads, which some vocabularies hold as special tokens. */
export function formatMarkers(format: Pick<OutputFormat, "tools" | "reasoning">): string[] {
  const markers: string[] = [];
  switch (format.tools) {
    case "hermes":
    case "generic":
    case "qwen3-coder":
      markers.push("<tool_call>", "</tool_call>");
      break;
    case "glm":
      markers.push("<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>");
      break;
    case "llama3":
      markers.push("<|python_tag|>");
      break;
    case "mistral":
    case "mistral-json":
      markers.push("[TOOL_CALLS]", "[ARGS]", "[CALL_ID]");
      break;
    case "harmony":
      markers.push("<|channel|>", "<|constrain|>", "<|message|>", "<|start|>", "<|end|>");
      break;
    case "deepseek-r1":
    case "deepseek-v3":
      markers.push(
        "<｜tool▁calls▁begin｜>",
        "<｜tool▁calls▁end｜>",
        "<｜tool▁call▁begin｜>",
        "<｜tool▁call▁end｜>",
        "<｜tool▁sep｜>",
      );
      break;
    case "gemma4":
      markers.push("<|tool_call>", "<tool_call|>", '<|"|>');
      break;
  }
  if (format.reasoning === "think") markers.push("<think>", "</think>");
  if (format.reasoning === "mistral-think") markers.push("[THINK]", "[/THINK]");
  if (format.reasoning === "gemma4-thought") markers.push("<|channel>", "<channel|>");
  return markers;
}
