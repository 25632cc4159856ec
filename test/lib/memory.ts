// A process's memory as the kernel reports it in /proc/<pid>/status, for the benchmarks and the tests that bound it.
// No side effects on import (test/bench/lib/procs.ts, which re-exports it, installs signal handlers).
import { readFileSync } from "node:fs";

export interface Memory {
  /** Resident set size now, bytes. */
  rss: number;
  /** Peak resident set size (VmHWM), bytes. */
  peakRss: number;
  /**
   * Anonymous resident memory (heap, stacks): what each further copy of the process costs. The rest of RSS is
   * file-backed (the executable's pages), shared by every process running the same binary from the same file.
   */
  rssAnon: number;
}

export function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(m[1]) * 1024;
  };
  return { rss: kib("VmRSS"), peakRss: kib("VmHWM"), rssAnon: kib("RssAnon") };
}
