/**
 * Stage 2's last act: exit non-zero so the supervisor (systemd) restarts the
 * neuron. `_exit` rather than `exit`: exit runs atexit handlers, and CUDA's
 * teardown on a wedged device is one more thing that can hang.
 */
import { dlopen, FFIType } from "bun:ffi";

/** EX_SOFTWARE; RECOVERY.md tells operators what it means in `systemctl status`. */
export const TP_FATAL_EXIT_CODE = 70;

export function exitImmediately(code: number): never {
  try {
    const libc = dlopen("libc.so.6", { _exit: { args: [FFIType.i32], returns: FFIType.void } });
    libc.symbols._exit(code);
  } catch {
    // No libc by that name (not glibc): the ordinary exit is the next best thing.
  }
  process.exit(code);
}
