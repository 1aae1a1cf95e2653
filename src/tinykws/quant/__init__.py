"""The integer (fixed-point) path for Cortex-M4 cores without an FPU.

`formats`: the fixed-point formats shared by the integer featurizer and the integer model
(the one place the Q-format of the features is defined). `features`: the integer log-mel
featurizer's Python reference, which the generated C matches bit for bit.
"""
