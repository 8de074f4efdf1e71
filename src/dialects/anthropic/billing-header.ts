/**
 * Claude Code (2.1.36 and later) puts a text block
 * `x-anthropic-billing-header: cc_version=…; cc_entrypoint=…; cch=…;` first
 * in `system` on every request, with hex parts recomputed from each body.
 * For Anthropic's API it is billing metadata; for a server that reuses the
 * KV cache of a repeated prefix it is a prompt that changes ~20 tokens in,
 * so every turn would prefill the whole 10–60k-token prompt again. vLLM,
 * Ollama and llama.cpp's server strip or normalise it too.
 *
 * Only a block that is exactly that one line (prefix-anchored) is dropped;
 * no other text is touched.
 */
const BILLING_HEADER = /^x-anthropic-billing-header:[^\r\n]*(\r?\n)?$/;

export function isBillingHeaderBlock(text: string): boolean {
  return BILLING_HEADER.test(text);
}
