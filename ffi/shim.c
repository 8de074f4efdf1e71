// Wrappers for the llama.cpp entry points that take or return structs by
// value, which bun:ffi cannot marshal. Compiled at run time by bun:ffi's
// built-in TinyCC (see ffi/shim.ts); keep it plain C99 and dependency-free.
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include "llama.h"

// --- logging ---------------------------------------------------------------
// llama_log_set is process-wide while each device Worker is its own thread, so
// a JS callback would be called from whichever thread logs. Instead lines go
// into one locked ring that any Worker drains on its own thread.

#define SHIM_LOG_CAP 65536
static char shim_log_buf[SHIM_LOG_CAP];
static int shim_log_len = 0;
static int shim_log_dropped = 0;
static int shim_log_min_level = GGML_LOG_LEVEL_WARN;
static int shim_log_last_level = GGML_LOG_LEVEL_INFO;
static pthread_mutex_t shim_log_mutex = PTHREAD_MUTEX_INITIALIZER;

static void shim_log_cb(enum ggml_log_level level, const char * text, void * user_data) {
  (void)user_data;
  int effective = level == GGML_LOG_LEVEL_CONT ? shim_log_last_level : (int)level;
  shim_log_last_level = effective;
  if (effective < shim_log_min_level || text == NULL) return;
  pthread_mutex_lock(&shim_log_mutex);
  size_t n = strlen(text);
  if (shim_log_len + (int)n + 2 < SHIM_LOG_CAP) {
    if (level != GGML_LOG_LEVEL_CONT) shim_log_buf[shim_log_len++] = (char)('0' + effective);
    memcpy(shim_log_buf + shim_log_len, text, n);
    shim_log_len += (int)n;
  } else {
    shim_log_dropped++;
  }
  pthread_mutex_unlock(&shim_log_mutex);
}

void shim_log_install(int min_level) {
  shim_log_min_level = min_level;
  llama_log_set(shim_log_cb, NULL);
}

// Copies buffered log text (each line prefixed by its level digit) into out;
// returns the byte count. Lines that did not fit stay for the next drain.
int shim_log_drain(char * out, int cap) {
  pthread_mutex_lock(&shim_log_mutex);
  int n = shim_log_len < cap ? shim_log_len : cap;
  memcpy(out, shim_log_buf, n);
  memmove(shim_log_buf, shim_log_buf + n, shim_log_len - n);
  shim_log_len -= n;
  pthread_mutex_unlock(&shim_log_mutex);
  return n;
}

// --- fatal errors --------------------------------------------------------------
// A CUDA error (or a failed GGML_ASSERT) inside ggml ends in ggml_abort, which
// calls abort(): the process dies with SIGABRT and the lines that explain it
// (ggml logs "CUDA error: ..." just before) would stay in the ring above. The
// abort callback writes the ring and the abort message to stderr as the
// neuron's own ERROR lines (text or JSON, as configured), then exits with the
// Stage 2 code so the supervisor restarts the neuron. Only async-signal-safe
// calls (write, _exit): the process is in an unknown state.

long write(int fd, const void * buf, unsigned long n);  // <unistd.h>, which the stand-in headers lack
void _exit(int status);

static int shim_fatal_exit_code = 70;
static int shim_fatal_json = 0;

static void shim_write_all(const char * text, unsigned long n) {
  while (n > 0) {
    long w = write(2, text, n);
    if (w <= 0) return;
    text += w;
    n -= (unsigned long)w;
  }
}

static void shim_write_str(const char * text) { shim_write_all(text, strlen(text)); }

// One log line: `[error] llama.cpp: <text>` or `{"level":"error","msg":"llama.cpp: <text>"}`.
static void shim_fatal_line(const char * level, const char * text, unsigned long n) {
  while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) n--;
  if (!shim_fatal_json) {
    shim_write_str("[");
    shim_write_str(level);
    shim_write_str("] llama.cpp: ");
    shim_write_all(text, n);
    shim_write_str("\n");
    return;
  }
  shim_write_str("{\"level\":\"");
  shim_write_str(level);
  shim_write_str("\",\"msg\":\"llama.cpp: ");
  for (unsigned long i = 0; i < n; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      shim_write_all(esc, 2);
    } else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]};
      shim_write_all(esc, 6);
    } else {
      shim_write_all((const char *)&text[i], 1);
    }
  }
  shim_write_str("\"}\n");
}

static void shim_abort_handler(const char * message) {
  // No lock: the thread that aborts may hold it, and nothing else matters any more.
  int start = 0;
  for (int i = 0; i <= shim_log_len; i++) {
    if (i < shim_log_len && shim_log_buf[i] != '\n') continue;
    if (i - start > 1) {
      int level = shim_log_buf[start] - '0';
      shim_fatal_line(level >= 4 ? "error" : level == 3 ? "warn" : "info", shim_log_buf + start + 1,
                      (unsigned long)(i - start - 1));
    }
    start = i + 1;
  }
  shim_log_len = 0;
  shim_fatal_line("error", message, strlen(message));
  char tail[96] = "native abort: exiting with code ";
  int len = (int)strlen(tail);
  int code = shim_fatal_exit_code;
  if (code >= 100) tail[len++] = (char)('0' + code / 100);
  if (code >= 10) tail[len++] = (char)('0' + code / 10 % 10);
  tail[len++] = (char)('0' + code % 10);
  const char * rest = " for the supervisor to restart the neuron (Stage 2)";
  memcpy(tail + len, rest, strlen(rest));
  len += (int)strlen(rest);
  shim_fatal_line("error", tail, (unsigned long)len);
  _exit(shim_fatal_exit_code);
}

// Installs the abort callback (process-wide in ggml); `json` picks the line format.
void shim_fatal_install(int exit_code, int json) {
  shim_fatal_exit_code = exit_code;
  shim_fatal_json = json;
  ggml_set_abort_callback(shim_abort_handler);
}

// --- abort -------------------------------------------------------------------
// data points at an int32 in a SharedArrayBuffer: another thread (the watchdog
// on the main thread) sets it to make a running llama_decode return 2.

static bool shim_abort_cb(void * data) {
  return data != NULL && *(volatile int32_t *)data != 0;
}

// --- model -----------------------------------------------------------------

struct llama_model * shim_model_load(const char * path, int32_t n_gpu_layers, int32_t main_gpu, bool use_mmap) {
  struct llama_model_params p = llama_model_default_params();
  p.n_gpu_layers = n_gpu_layers;
  p.main_gpu = main_gpu;
  p.split_mode = LLAMA_SPLIT_MODE_NONE;
  p.load_mode = use_mmap ? LLAMA_LOAD_MODE_MMAP : LLAMA_LOAD_MODE_NONE;
  return llama_model_load_from_file(path, p);
}

// A tensor-parallel group's model: every layer offloaded, split by layer over
// the group's devices only (ggml device names such as "CUDA0", passed as
// `n_devices` NUL-terminated strings back to back in `names`). Returns NULL,
// after logging why, when a name is not a registered ggml device.
struct llama_model * shim_model_load_devices(const char * path, const char * names, int32_t n_devices,
                                             int32_t split_mode, bool use_mmap) {
  ggml_backend_dev_t devs[65];
  if (n_devices < 1 || n_devices > 64 || names == NULL) return NULL;
  const char * name = names;
  for (int32_t i = 0; i < n_devices; i++) {
    ggml_backend_dev_t dev = ggml_backend_dev_by_name(name);
    if (dev == NULL) {
      shim_log_cb(GGML_LOG_LEVEL_ERROR, "shim_model_load_devices: no ggml device named ", NULL);
      shim_log_cb(GGML_LOG_LEVEL_CONT, name, NULL);
      shim_log_cb(GGML_LOG_LEVEL_CONT, "\n", NULL);
      return NULL;
    }
    devs[i] = dev;
    name += strlen(name) + 1;
  }
  devs[n_devices] = NULL;
  struct llama_model_params p = llama_model_default_params();
  p.devices = devs; // copied into the model by llama_model_load_from_file
  p.n_gpu_layers = -1;
  p.main_gpu = 0;   // index into `devices`: the leader's device holds the output layer
  p.split_mode = (enum llama_split_mode)split_mode;
  p.load_mode = use_mmap ? LLAMA_LOAD_MODE_MMAP : LLAMA_LOAD_MODE_NONE;
  return llama_model_load_from_file(path, p);
}

// --- context ---------------------------------------------------------------

struct llama_context * shim_context_new(struct llama_model * model, uint32_t n_ctx, uint32_t n_batch,
                                        uint32_t n_seq_max, int32_t n_threads, int32_t * abort_flag) {
  struct llama_context_params p = llama_context_default_params();
  p.n_ctx = n_ctx;
  p.n_batch = n_batch;
  p.n_ubatch = n_batch;
  p.n_seq_max = n_seq_max;
  p.n_threads = n_threads;
  p.n_threads_batch = n_threads;
  // One KV stream per sequence: every slot owns n_ctx / n_seq_max cells, so a
  // slot can always use the model's full configured context.
  p.kv_unified = false;
  p.no_perf = true;
  p.abort_callback = shim_abort_cb;
  p.abort_callback_data = abort_flag;
  return llama_init_from_model(model, p);
}

// A context that outputs one pooled embedding per sequence: the model's own
// pooling (GGUF metadata) for an embedding model, mean pooling for a model
// that has none (a chat model), as llama-server and Ollama do. Sequences share
// one KV stream, and a sequence must fit in one ubatch for pooling, so
// n_ubatch = n_batch = n_ctx. Returns NULL when the model pools by rank (a
// reranker), which has no embedding to give.
struct llama_context * shim_embed_context_new(struct llama_model * model, uint32_t n_ctx, uint32_t n_seq_max,
                                              int32_t n_threads, int32_t * abort_flag) {
  struct llama_context_params p = llama_context_default_params();
  p.n_ctx = n_ctx;
  p.n_batch = n_ctx;
  p.n_ubatch = n_ctx;
  p.n_seq_max = n_seq_max;
  p.n_threads = n_threads;
  p.n_threads_batch = n_threads;
  p.kv_unified = true;
  p.no_perf = true;
  p.embeddings = true;
  p.pooling_type = LLAMA_POOLING_TYPE_UNSPECIFIED;
  p.abort_callback = shim_abort_cb;
  p.abort_callback_data = abort_flag;
  struct llama_context * ctx = llama_init_from_model(model, p);
  if (ctx == NULL) return NULL;
  enum llama_pooling_type pooling = llama_pooling_type(ctx);
  if (pooling == LLAMA_POOLING_TYPE_RANK) {
    llama_free(ctx);
    return NULL;
  }
  if (pooling != LLAMA_POOLING_TYPE_NONE) return ctx;
  llama_free(ctx);
  p.pooling_type = LLAMA_POOLING_TYPE_MEAN;
  return llama_init_from_model(model, p);
}

// --- batch -----------------------------------------------------------------

struct llama_batch * shim_batch_new(int32_t n_tokens) {
  struct llama_batch * b = (struct llama_batch *)malloc(sizeof(struct llama_batch));
  if (b == NULL) return NULL;
  *b = llama_batch_init(n_tokens, 0, 1);
  return b;
}

void shim_batch_free(struct llama_batch * b) {
  if (b == NULL) return;
  llama_batch_free(*b);
  free(b);
}

// Fills the batch from parallel arrays (one seq id per token) and decodes it.
int32_t shim_batch_decode(struct llama_context * ctx, struct llama_batch * b, int32_t n, const int32_t * tokens,
                          const int32_t * pos, const int32_t * seq, const int8_t * logits) {
  for (int32_t i = 0; i < n; i++) {
    b->token[i] = tokens[i];
    b->pos[i] = pos[i];
    b->n_seq_id[i] = 1;
    b->seq_id[i][0] = seq[i];
    b->logits[i] = logits[i];
  }
  b->n_tokens = n;
  return llama_decode(ctx, *b);
}

// --- sampling --------------------------------------------------------------

// Builds bias → penalties → top-k → top-p → min-p → temperature → dist, or
// greedy when temperature <= 0 (bias and penalties still apply).
struct llama_sampler * shim_sampler_new(int32_t n_vocab, float temperature, int32_t top_k, float top_p, float min_p,
                                        uint32_t seed, int32_t penalty_last_n, float penalty_repeat,
                                        float penalty_freq, float penalty_present, int32_t n_bias,
                                        const int32_t * bias_tokens, const float * bias_values) {
  struct llama_sampler_chain_params cp = llama_sampler_chain_default_params();
  cp.no_perf = true;
  struct llama_sampler * chain = llama_sampler_chain_init(cp);
  if (chain == NULL) return NULL;
  if (n_bias > 0) {
    llama_logit_bias * biases = (llama_logit_bias *)malloc(sizeof(llama_logit_bias) * n_bias);
    if (biases == NULL) {
      llama_sampler_free(chain);
      return NULL;
    }
    for (int32_t i = 0; i < n_bias; i++) {
      biases[i].token = bias_tokens[i];
      biases[i].bias = bias_values[i];
    }
    // The sampler copies the array.
    llama_sampler_chain_add(chain, llama_sampler_init_logit_bias(n_vocab, n_bias, biases));
    free(biases);
  }
  if (penalty_last_n != 0 && (penalty_repeat != 1.0f || penalty_freq != 0.0f || penalty_present != 0.0f))
    llama_sampler_chain_add(chain, llama_sampler_init_penalties(n_vocab, penalty_last_n, penalty_repeat,
                                                                penalty_freq, penalty_present));
  if (temperature <= 0.0f) {
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    return chain;
  }
  if (top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(top_k));
  if (top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(top_p, 1));
  if (min_p > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(min_p, 1));
  llama_sampler_chain_add(chain, llama_sampler_init_temp(temperature));
  llama_sampler_chain_add(chain, llama_sampler_init_dist(seed));
  return chain;
}

// Greedy decoding straight from the logits. llama_sampler_sample first copies
// all n_vocab logits into llama_token_data for the greedy sampler to scan: for
// a 262k vocabulary (Gemma 3) that was ~1.3 ms of a ~22 ms decode step on the
// development machine, against ~0.2 ms for this scan. The same choice as
// llama_sampler_init_greedy: the first highest logit (a NaN is never chosen
// over an earlier logit). Four running maxima because TinyCC, which compiles
// this file, neither unrolls nor vectorises. Returns -1 without logits.
// shim_argmax is the scan alone, over any float array (tested on its own).
int32_t shim_argmax(const float * logits, int32_t n) {
  if (n <= 0) return -1;
  const float * p = logits;
  const float * end = logits + (n & ~3);
  float m0 = logits[0], m1 = m0, m2 = m0, m3 = m0;
  const float * b0 = logits, * b1 = logits, * b2 = logits, * b3 = logits;
  for (; p < end; p += 4) {
    if (p[0] > m0) { m0 = p[0]; b0 = p; }
    if (p[1] > m1) { m1 = p[1]; b1 = p + 1; }
    if (p[2] > m2) { m2 = p[2]; b2 = p + 2; }
    if (p[3] > m3) { m3 = p[3]; b3 = p + 3; }
  }
  // Across lanes a tie goes to the earlier token, as in one scan from the start.
  const float * best = b0;
  float m = m0;
  if (m1 > m || (m1 == m && b1 < best)) { m = m1; best = b1; }
  if (m2 > m || (m2 == m && b2 < best)) { m = m2; best = b2; }
  if (m3 > m || (m3 == m && b3 < best)) { m = m3; best = b3; }
  for (; p < logits + n; p++)
    if (*p > m) { m = *p; best = p; }
  return (int32_t)(best - logits);
}

int32_t shim_sample_greedy(struct llama_context * ctx, int32_t idx, int32_t n_vocab) {
  const float * logits = llama_get_logits_ith(ctx, idx);
  if (logits == NULL) return -1;
  return shim_argmax(logits, n_vocab);
}

// Samples one token of a grammar-constrained sequence (llama.cpp's common_sampler
// trick): sample with the chain alone, and only when the grammar rejects that
// token constrain the whole vocabulary and sample again. Checking one token is
// cheap; applying the grammar to every token of a large vocabulary is not.
// `buf` holds n_vocab llama_token_data. Returns the token, or -1 without logits.
int32_t shim_sample_constrained(struct llama_sampler * chain, struct llama_sampler * grammar,
                                struct llama_context * ctx, int32_t idx, llama_token_data * buf, int32_t n_vocab) {
  const float * logits = llama_get_logits_ith(ctx, idx);
  if (logits == NULL) return -1;
  for (int32_t i = 0; i < n_vocab; i++) {
    buf[i].id = i;
    buf[i].logit = logits[i];
    buf[i].p = 0.0f;
  }
  llama_token_data_array cur = { buf, (size_t)n_vocab, -1, false };
  llama_sampler_apply(chain, &cur);
  if (cur.selected < 0 || cur.selected >= (int64_t)cur.size) return -1;
  llama_token id = cur.data[cur.selected].id;
  llama_token_data single = { id, 1.0f, 0.0f };
  llama_token_data_array one = { &single, 1, -1, false };
  llama_sampler_apply(grammar, &one);
  // The grammar sets a rejected token's logit to -INFINITY.
  if (!(single.logit > -1e30f)) {
    for (int32_t i = 0; i < n_vocab; i++) {
      buf[i].id = i;
      buf[i].logit = logits[i];
      buf[i].p = 0.0f;
    }
    cur.data = buf;
    cur.size = (size_t)n_vocab;
    cur.selected = -1;
    cur.sorted = false;
    llama_sampler_apply(grammar, &cur);
    llama_sampler_apply(chain, &cur);
    if (cur.selected < 0 || cur.selected >= (int64_t)cur.size) return -1;
    id = cur.data[cur.selected].id;
  }
  llama_sampler_accept(grammar, id);
  llama_sampler_accept(chain, id);
  return id;
}

// --- chat template fallback ------------------------------------------------

// Renders with llama.cpp's built-in (non-Jinja) templates; roles and contents
// are parallel arrays. Returns the length needed (may exceed cap).
int32_t shim_chat_apply_template(const char * tmpl, int32_t n_msg, const char ** roles, const char ** contents,
                                 bool add_ass, char * buf, int32_t cap) {
  llama_chat_message * msgs = (llama_chat_message *)malloc(sizeof(llama_chat_message) * (n_msg > 0 ? n_msg : 1));
  if (msgs == NULL) return -1;
  for (int32_t i = 0; i < n_msg; i++) {
    msgs[i].role = roles[i];
    msgs[i].content = contents[i];
  }
  int32_t n = llama_chat_apply_template(tmpl, msgs, (size_t)n_msg, add_ass, buf, cap);
  free(msgs);
  return n;
}

// Struct sizes as this compiler sees them, checked against the expected ABI at start.
int32_t shim_sizeof_context_params(void) { return (int32_t)sizeof(struct llama_context_params); }
int32_t shim_sizeof_model_params(void) { return (int32_t)sizeof(struct llama_model_params); }
