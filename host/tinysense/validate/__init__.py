"""Validate and bench: run a model on the node and in tflite-micro, compare, time."""
