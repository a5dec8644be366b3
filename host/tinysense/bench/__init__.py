"""Benchmarks: models on a node vs tflite-micro (models), the node link (link), the
gateway (gateway), the node's uplink (uplink). Each prints numbers; none is a test."""
