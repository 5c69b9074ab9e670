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
from formless.attacks.quantizers import SCHEMES, Quantizer, get_quantizer, parse_schemes

__all__ = [
    "SCHEMES",
    "QuantizationError",
    "QuantizationReport",
    "Quantizer",
    "bitsandbytes_available",
    "get_quantizer",
    "load_bitsandbytes",
    "parse_schemes",
    "quantize_model_",
    "quantize_weight",
    "quantized_copy",
]
