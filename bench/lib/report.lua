-- wrk script for bench/run.sh: plain GETs (keep-alive), and at the end one
-- machine-readable line with the figures (latencies in microseconds).
done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d " ..
      "lat_mean=%.1f lat_p50=%d lat_p90=%d lat_p99=%d lat_max=%d\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max))
end
