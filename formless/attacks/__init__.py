"""Model-level attacks the audit re-runs against an edited model (forgotten knowledge can come back)."""

from formless.attacks.quantize import (
    QuantizationError,
    QuantizationReport,
    bitsandbytes_available,
    load_bitsandbytes,
    quantize_model_,
    quantize_weight,
    quantized_copy,
)

__all__ = [
    "QuantizationError",
    "QuantizationReport",
    "bitsandbytes_available",
    "load_bitsandbytes",
    "quantize_model_",
    "quantize_weight",
    "quantized_copy",
]
