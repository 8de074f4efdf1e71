import pkg from "../../package.json" with { type: "json" };

/** The product version, baked into the compiled binary at build time. */
export const VERSION: string = pkg.version;
