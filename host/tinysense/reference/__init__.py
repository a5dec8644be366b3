"""The desktop reference: the tflite-micro interpreter, which the node must equal byte for byte."""

from tinysense.reference.graph import (
    Graph,
    OpInfo,
    TensorInfo,
    count_macs,
    model_bytes,
    read_graph,
)
from tinysense.reference.runner import Reference, all_tensors, arena_bytes, run, time_invoke

__all__ = ["Graph", "OpInfo", "Reference", "TensorInfo", "all_tensors", "arena_bytes",
           "count_macs", "model_bytes", "read_graph", "run", "time_invoke"]
