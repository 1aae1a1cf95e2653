/*
 * tkws_qformats.h - the fixed-point formats of the integer model, written from
 * tinykws.quant.model by tinykws.codegen.model.qformats_h (do not edit by hand:
 * tests/test_quant_model.py checks that this file is what that function writes).
 */
#ifndef TKWS_QFORMATS_H
#define TKWS_QFORMATS_H

#define TKWS_Q_PRE_FRAC 12      /* pre-activations: int32 Q.12 */
#define TKWS_Q_LOGIT_FRAC 10    /* logits: int32 Q.10 */
#define TKWS_Q_ACT_CLAMP (1L << 27)  /* W x + U h, logits: [-2^27, 2^27) */

#endif /* TKWS_QFORMATS_H */
