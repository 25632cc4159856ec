// The pusher's own metric names the reliability suites read from its /metrics (HTTP_PORT). Kept in one place so a
// rename in pusher/src shows up here once.
const P = "knative_lambda_metric_pusher";

export const PM = {
  sent: `${P}_samples_sent_total`,
  failed: `${P}_samples_failed_total`,
  dropped: `${P}_samples_dropped_total`,
  retries: `${P}_retries_total`,
  buffered: `${P}_buffered_samples`,
  lastSuccess: `${P}_last_success_timestamp_seconds`,
  scrapeFailures: `${P}_scrape_failures_total`,
  memoryOnly: `${P}_disk_buffer_memory_only_samples_total`,
  memoryOnlyNow: `${P}_disk_buffer_memory_only_samples`,
} as const;
