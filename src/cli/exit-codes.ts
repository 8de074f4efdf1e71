/** Process exit codes, documented in README ("Exit codes"). */
export const EXIT = {
  ok: 0,
  /** Runtime failure (a server that could not start, a failed admin action). */
  failure: 1,
  /** Bad usage or bad configuration: fix the command line or the file. */
  usage: 2,
  /** The gateway could not be reached (status, models). */
  unreachable: 3,
} as const;

export class ExitError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = "ExitError";
    this.exitCode = exitCode;
  }
}
