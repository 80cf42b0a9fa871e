"""Per-device ring buffers and sliding windows (numpy only: no Kafka, no Paddle)."""
