"""notes: the example HTTP API that conveyor deploys (local, dev and prod stages)."""
