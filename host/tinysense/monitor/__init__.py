"""Serial monitor: timestamped lines, uplink frame decoding, log file, reconnects."""
