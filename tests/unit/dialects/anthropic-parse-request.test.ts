import { describe, expect, test } from "bun:test";
import { CortexError } from "../../../src/core/errors.ts";
import {
  parseAnthropicCountTokensRequest,
  parseAnthropicRequest,
} from "../../../src/dialects/anthropic/parse-request.ts";

function rejection(body: unknown): CortexError {
  try {
    parseAnthropicRequest(body, { onWarning: () => {} });
  } catch (error) {
    if (error instanceof CortexError) return error;
    throw error;
  }
  throw new Error("expected a rejection");
}

const base = { model: "tiny", max_tokens: 64, messages: [{ role: "user", content: "hi" }] };

describe("parseAnthropicRequest", () => {
  test("a Claude Code style request: system blocks, system reminders, tool round trip, thinking kept for the template", () => {
    const warnings: string[] = [];
    const req = parseAnthropicRequest(
      {
        model: "tiny",
        max_tokens: 32000,
        system: [
          { type: "text", text: "You are Claude Code.", cache_control: { type: "ephemeral" } },
          { type: "text", text: "Be terse." },
        ],
        messages: [
          {
            role: "user",
            content: [{ type: "text", text: "list files", cache_control: { type: "ephemeral" } }],
          },
          {
            role: "assistant",
            content: [
              { type: "thinking", thinking: "I should run ls", signature: "sig" },
              { type: "text", text: "Running ls." },
              { type: "tool_use", id: "toolu_01A", name: "Bash", input: { command: "ls" } },
            ],
          },
          {
            role: "user",
            content: [
              { type: "tool_result", tool_use_id: "toolu_01A", content: "a.txt\nb.txt" },
              { type: "text", text: "now count them" },
            ],
          },
          { role: "system", content: "<system-reminder>todo list is empty</system-reminder>" },
        ],
        tools: [
          {
            name: "Bash",
            description: "run",
            input_schema: { type: "object" },
            cache_control: { type: "ephemeral" },
          },
          { name: "Later", input_schema: { type: "object" }, defer_loading: true },
          { type: "web_search_20250305", name: "web_search", max_uses: 5 },
        ],
        tool_choice: { type: "auto", disable_parallel_tool_use: true },
        thinking: { type: "enabled", budget_tokens: 1024 },
        context_management: { edits: [] },
        output_config: { effort: "high" },
        service_tier: "auto",
        container: "c-1",
        metadata: { user_id: "user_abc" },
        stop_sequences: ["\n\nHuman:"],
        temperature: 1,
        top_k: 40,
        stream: true,
      },
      { onWarning: (m) => warnings.push(m) },
    );
    expect(req).toEqual({
      model: "tiny",
      messages: [
        {
          role: "system",
          content: [
            { type: "text", text: "You are Claude Code." },
            { type: "text", text: "Be terse." },
          ],
        },
        { role: "user", content: [{ type: "text", text: "list files" }] },
        {
          role: "assistant",
          content: [
            { type: "thinking", text: "I should run ls" },
            { type: "text", text: "Running ls." },
            { type: "tool_call", id: "toolu_01A", name: "Bash", arguments: '{"command":"ls"}' },
          ],
        },
        {
          role: "tool",
          content: [
            {
              type: "tool_result",
              toolCallId: "toolu_01A",
              content: [{ type: "text", text: "a.txt\nb.txt" }],
              isError: false,
            },
          ],
        },
        {
          role: "user",
          content: [
            { type: "text", text: "now count them" },
            // A reminder after the conversation began stays in place (prefix-stable), with the turn it follows.
            { type: "text", text: "<system-reminder>todo list is empty</system-reminder>" },
          ],
        },
      ],
      tools: [
        { name: "Bash", description: "run", parameters: { type: "object" } },
        { name: "Later", parameters: { type: "object" } },
      ],
      toolChoice: { type: "auto" },
      parallelToolCalls: false,
      maxTokens: 32000,
      temperature: 1,
      topK: 40,
      stop: ["\n\nHuman:"],
      stream: true,
      includeUsage: true,
      user: "user_abc",
      // output_config.effort wins over thinking's budget.
      reasoningEffort: "high",
      thinking: true,
    });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("web_search");
  });

  test("images (base64 and url) and error tool results with block content", () => {
    const req = parseAnthropicRequest({
      ...base,
      messages: [
        {
          role: "user",
          content: [
            {
              type: "tool_result",
              tool_use_id: "toolu_1",
              is_error: true,
              content: [
                { type: "text", text: "screenshot failed" },
                { type: "image", source: { type: "base64", media_type: "image/png", data: "AAAA" } },
              ],
            },
            { type: "image", source: { type: "url", url: "https://x.test/a.jpg" } },
          ],
        },
      ],
    });
    expect(req.messages).toEqual([
      {
        role: "tool",
        content: [
          {
            type: "tool_result",
            toolCallId: "toolu_1",
            isError: true,
            content: [
              { type: "text", text: "screenshot failed" },
              { type: "image", source: { kind: "base64", mediaType: "image/png", data: "AAAA" } },
            ],
          },
        ],
      },
      { role: "user", content: [{ type: "image", source: { kind: "url", url: "https://x.test/a.jpg" } }] },
    ]);
  });

  test("output_config.format becomes a JSON schema response format", () => {
    const req = parseAnthropicRequest({
      ...base,
      output_config: { format: { type: "json_schema", schema: { type: "object" } } },
    });
    expect(req.responseFormat).toEqual({
      type: "json_schema",
      name: "response",
      schema: { type: "object" },
      strict: true,
    });
  });

  test.each([
    ["missing max_tokens", { model: "m", messages: [{ role: "user", content: "hi" }] }, "max_tokens"],
    [
      "document blocks",
      { ...base, messages: [{ role: "user", content: [{ type: "document", source: {} }] }] },
      "messages.0.content.0.type",
    ],
    [
      "server tool results in history",
      {
        ...base,
        messages: [
          {
            role: "assistant",
            content: [{ type: "server_tool_use", id: "s", name: "web_search", input: {} }],
          },
        ],
      },
      "messages.0.content.0.type",
    ],
    [
      "MCP servers",
      { ...base, mcp_servers: [{ type: "url", url: "https://mcp.test", name: "x" }] },
      "mcp_servers",
    ],
    ["custom tool without schema", { ...base, tools: [{ name: "x" }] }, "tools.0.input_schema"],
    ["tool choice without name", { ...base, tool_choice: { type: "tool" } }, "tool_choice.name"],
    ["bad role", { ...base, messages: [{ role: "robot", content: "x" }] }, "messages.0.role"],
  ])("rejects %s with invalid_request (400)", (_, body, param) => {
    const error = rejection(body);
    expect(error.status).toBe(400);
    expect(error.code).toBe("invalid_request");
    expect(error.param).toBe(param);
  });

  test("count_tokens needs no max_tokens and yields a non-streaming request", () => {
    const req = parseAnthropicCountTokensRequest({
      model: "tiny",
      system: "sys",
      messages: [{ role: "user", content: "hello" }],
      tools: [{ name: "t", input_schema: { type: "object" } }],
    });
    expect(req).toEqual({
      model: "tiny",
      messages: [
        { role: "system", content: [{ type: "text", text: "sys" }] },
        { role: "user", content: [{ type: "text", text: "hello" }] },
      ],
      tools: [{ name: "t", parameters: { type: "object" } }],
      stop: [],
      stream: false,
      includeUsage: false,
    });
  });
});
