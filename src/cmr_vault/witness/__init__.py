"""An independent C2SP tlog-witness: cosigns a log's checkpoints it has checked for consistency."""
