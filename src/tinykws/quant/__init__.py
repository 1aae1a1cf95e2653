"""The integer (fixed-point) path for Cortex-M4 cores without an FPU.

`formats`: the fixed-point formats shared by the integer featurizer and the integer model
(the one place the Q-format of the features is defined). `features`: the integer log-mel
featurizer's Python reference, which the generated C matches bit for bit. `model`: the
integer FastGRNN/FastRNN (int8 weights, int16 states) and its bit-exact Python reference;
`calibrate`: `tinykws quantize` (calibration, post-training quantization, measurements);
`qat`: quantization-aware fine-tuning.
"""
