// A small file (credential, CA bundle) that is read again whenever it changes, so that a rotated Kubernetes Secret
// takes effect without a restart. Kubernetes swaps a `..data` symlink: stat follows it, so the identity (inode, size,
// mtime) changes. A file that cannot be read, or whose content fails its check, is an error for the request at hand,
// never for the process.
import { readFileSync, statSync } from "node:fs";

export interface FileLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export class UnreadableFileError extends Error {
  readonly path: string;
  constructor(path: string, cause: unknown) {
    super(
      cause instanceof UnusableContentError
        ? `cannot use ${path}: ${cause.message}`
        : `cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`,
    );
    this.name = "UnreadableFileError";
    this.path = path;
  }
}

/** Thrown by a content check: the file reads, but its content cannot be used (the message never holds it). */
export class UnusableContentError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "UnusableContentError";
  }
}

export class WatchedFile {
  readonly path: string;
  readonly #what: string;
  readonly #log: FileLog;
  /** Returns why the content cannot be used (e.g. a header value HTTP cannot send), or undefined. */
  readonly #check: ((content: string) => string | undefined) | undefined;
  #identity = "";
  #content: string | undefined;
  #lastError = "";

  constructor(path: string, what: string, log: FileLog, check?: (content: string) => string | undefined) {
    this.path = path;
    this.#what = what;
    this.#log = log;
    this.#check = check;
  }

  /** The current content with surrounding white space trimmed (as Prometheus does); throws UnreadableFileError. */
  read(): string {
    let identity: string;
    try {
      const st = statSync(this.path);
      identity = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (identity === this.#identity && this.#content !== undefined) return this.#content;
      const content = readFileSync(this.path, "utf8").trim();
      // A bad content is not cached: the next read looks again, so a fixed file is picked up at once.
      const unusable = this.#check?.(content);
      if (unusable !== undefined) throw new UnusableContentError(unusable);
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
          e instanceof UnusableContentError
            ? "Cannot use file content; requests wait until it is fixed"
            : "Cannot read file; requests wait until it can be read",
        );
      }
      throw err;
    }
  }
}
