/* tinykws device harness: the host writes a clip's audio into a RAM mailbox, calls
 * tkws_harness_run (or tkws_harness_run_q), and reads back features and class scores.
 *
 * Exactly what firmware does with the ELL-compatible API: every block of `block_len`
 * samples goes through mfcc_Filter; its output goes through completemodel_Predict once the
 * featurizer's window is full (after `warmup_blocks` blocks since a reset).
 * tkws_harness_run_q is the all-integer firmware loop of an int8 build: int16 samples ->
 * mfcc_FilterInt16 -> completemodel_PredictQ (Q7.8 in, Q15 out) -> detector_ProcessQ.
 *
 * The mailbox layout (tkws_mailbox.h) is generated from tinykws/device/layout.py when the
 * image is built; the host packs the same fields. Where the features and scores go in the
 * data area is the host's choice too (`features_at`, `scores_at`). */
#include <stdint.h>

#include "tkws_mailbox.h"

/* The generated entry points (see featurizer.h / model.h). */
void mfcc_Filter(void *context, const float *input, float *output);
void mfcc_Reset(void);
void completemodel_Predict(void *context, const float *input, float *output);
void completemodel_Reset(void);
/* The generated detector (detector.h): linked only into stream images, NULL otherwise. */
__attribute__((weak)) void detector_Reset(void);
__attribute__((weak)) int32_t detector_Process(const float *scores, float *confidence);
/* The integer entry points of an int8 build (tkws_harness_run_q): NULL in float builds. */
__attribute__((weak)) void mfcc_FilterInt16(void *context, const int16_t *input, int16_t *output);
__attribute__((weak)) void completemodel_PredictQ(void *context, const int16_t *input,
                                                  int16_t *output);
__attribute__((weak)) int32_t detector_ProcessQ(const int16_t *scores, int16_t *confidence);

/* In its own section after the stack (see cortex_m4.ld): the start-up code never touches
 * it, so a host (or QEMU's loader) may fill it before reset. */
__attribute__((section(".mailbox_header"))) volatile tkws_mailbox_t tkws_mailbox;

/* Data area after the header, up to the end of RAM (see cortex_m4.ld): audio
 * [n_blocks * block_len] first, features and scores where the header says (offsets in
 * 32-bit words: float32 for tkws_harness_run, int16 pairs for tkws_harness_run_q). */
extern float tkws_mailbox_data[];

/* Resets the default states (the detector's when `detect`); the blocks before the first
 * frame. */
static inline __attribute__((always_inline)) uint32_t reset_states(int detect) {
    if (!tkws_mailbox.reset) return 0;
    mfcc_Reset();
    completemodel_Reset();
    if (detect) detector_Reset();
    return tkws_mailbox.warmup_blocks;
}

/* 0 when the host wrote the layout this image was built with; else says so. */
static inline __attribute__((always_inline)) int bad_magic(void) {
    if (tkws_mailbox.magic == TKWS_MAILBOX_MAGIC) return 0;
    tkws_mailbox.frames_done = 0;
    tkws_mailbox.status = TKWS_MAILBOX_BAD_MAGIC;
    return 1;
}

__attribute__((noinline, used)) void tkws_harness_run(void) {
    if (bad_magic()) return;  /* another layout (or nothing): read nothing */
    const uint32_t n_blocks = tkws_mailbox.n_blocks, block_len = tkws_mailbox.block_len;
    const uint32_t n_features = tkws_mailbox.n_features, n_scores = tkws_mailbox.n_scores;
    const float *audio = tkws_mailbox_data;
    float *features = tkws_mailbox_data + tkws_mailbox.features_at;
    float *scores = tkws_mailbox_data + tkws_mailbox.scores_at;
    const int detect = tkws_mailbox.detect && detector_Process && detector_Reset;
    float *detections = tkws_mailbox_data + tkws_mailbox.detections_at;
    const uint32_t skip = reset_states(detect);
    uint32_t frames = 0;
    for (uint32_t b = 0; b < n_blocks; b++) {
        float *feat = features + b * n_features;
        float *score = scores + frames * n_scores;
        mfcc_Filter(0, audio + b * block_len, feat);
        if (b < skip) continue;
        completemodel_Predict(0, feat, score);
        if (detect) {
            float confidence;
            detections[2 * frames] = (float)detector_Process(score, &confidence);
            detections[2 * frames + 1] = confidence;
        }
        frames++;
    }
    tkws_mailbox.frames_done = frames;
    tkws_mailbox.status = TKWS_MAILBOX_DONE;
}

/* The all-integer loop: audio, features (Q7.8) and scores (Q15) are int16 arrays at the
 * header's word offsets, detections [frames][2] int32 (class or -1, Q15 confidence). */
__attribute__((noinline, used)) void tkws_harness_run_q(void) {
    if (bad_magic()) return;
    if (!mfcc_FilterInt16 || !completemodel_PredictQ) {
        tkws_mailbox.frames_done = 0;
        tkws_mailbox.status = TKWS_MAILBOX_NO_INTEGER;  /* a float build */
        return;
    }
    const uint32_t n_blocks = tkws_mailbox.n_blocks, block_len = tkws_mailbox.block_len;
    const uint32_t n_features = tkws_mailbox.n_features, n_scores = tkws_mailbox.n_scores;
    const int16_t *audio = (const int16_t *)(void *)tkws_mailbox_data;
    int16_t *features = (int16_t *)(void *)(tkws_mailbox_data + tkws_mailbox.features_at);
    int16_t *scores = (int16_t *)(void *)(tkws_mailbox_data + tkws_mailbox.scores_at);
    const int detect = tkws_mailbox.detect && detector_ProcessQ && detector_Reset;
    int32_t *detections = (int32_t *)(void *)(tkws_mailbox_data + tkws_mailbox.detections_at);
    const uint32_t skip = reset_states(detect);
    uint32_t frames = 0;
    for (uint32_t b = 0; b < n_blocks; b++) {
        int16_t *feat = features + b * n_features;
        int16_t *score = scores + frames * n_scores;
        mfcc_FilterInt16(0, audio + b * block_len, feat);
        if (b < skip) continue;
        completemodel_PredictQ(0, feat, score);
        if (detect) {
            int16_t confidence;
            detections[2 * frames] = detector_ProcessQ(score, &confidence);
            detections[2 * frames + 1] = confidence;
        }
        frames++;
    }
    tkws_mailbox.frames_done = frames;
    tkws_mailbox.status = TKWS_MAILBOX_DONE;
}
