"""The replica engine model: continuous batching, chunked prefill and a prefix-cached KV store, pure."""
