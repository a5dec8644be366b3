"""Convert an int8 .tflite into a .tsm package: read, check, prepare, plan, write.

The pipeline is convert/pipeline.py; reader, ops/ops_misc (Prepare), planner and writer
are its steps, report the fit verdict.
"""

from tinysense.convert.pipeline import (
    PREPARE, SUPPORTED, ConvertResult, UnsupportedModel, convert_model, dequantize_output, quantize_input,
    write_package,
)

__all__ = ["PREPARE", "SUPPORTED", "ConvertResult", "UnsupportedModel", "convert_model",
           "dequantize_output", "quantize_input", "write_package"]
