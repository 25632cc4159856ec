// The builder stand-in: standard library only, so it builds with no module download.
module metricspusher.dev/test/node/images/standin

go 1.24.0
