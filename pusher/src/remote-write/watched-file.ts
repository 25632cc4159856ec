// A small file (credential, CA bundle) that is read again whenever it changes, so that a rotated Kubernetes Secret
// takes effect without a restart. Kubernetes swaps a `..data` symlink: stat follows it, so the identity (inode, size,
// mtime) changes. A file that cannot be read is an error for the request at hand, never for the process.
import { readFileSync, statSync } from "node:fs";

export interface FileLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export class UnreadableFileError extends Error {
  readonly path: string;
  constructor(path: string, cause: unknown) {
    super(`cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`);
    this.name = "UnreadableFileError";
    this.path = path;
  }
}

export class WatchedFile {
  readonly path: string;
  readonly #what: string;
  readonly #log: FileLog;
  #identity = "";
  #content: string | undefined;
  #lastError = "";

  constructor(path: string, what: string, log: FileLog) {
    this.path = path;
    this.#what = what;
    this.#log = log;
  }

  /** The current content with surrounding white space trimmed (as Prometheus does); throws UnreadableFileError. */
  read(): string {
    let identity: string;
    try {
      const st = statSync(this.path);
      identity = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (identity === this.#identity && this.#content !== undefined) return this.#content;
      const content = readFileSync(this.path, "utf8").trim();
      const changed = this.#content !== undefined;
      this.#identity = identity;
      this.#content = content;
      if (this.#lastError !== "") this.#log.info({ file: this.path, what: this.#what }, "File is readable again");
      else if (changed) this.#log.info({ file: this.path, what: this.#what }, "File changed; using the new content");
      this.#lastError = "";
      return content;
    } catch (e) {
      const err = new UnreadableFileError(this.path, e);
      // Log once per distinct problem: a missing Secret would otherwise log on every retry.
      if (err.message !== this.#lastError) {
        this.#lastError = err.message;
        this.#log.warn(
          { file: this.path, what: this.#what, err: err.message },
          "Cannot read file; requests wait until it can be read",
        );
      }
      throw err;
    }
  }
}
