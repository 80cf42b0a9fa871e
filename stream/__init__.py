"""sensorstream's Kafka side: config, records, the worker loop and the CLI."""
