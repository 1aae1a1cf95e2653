/* tinykws device harness: the host writes a clip's audio into a RAM mailbox, calls
 * tkws_harness_run, and reads back features and class scores.
 *
 * Exactly what firmware does with the ELL-compatible API: every block of `block_len`
 * samples goes through mfcc_Filter; its output goes through completemodel_Predict once the
 * featurizer's window is full (after `warmup_blocks` blocks since a reset).
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

/* In its own section after the stack (see cortex_m4.ld): the start-up code never touches
 * it, so a host (or QEMU's loader) may fill it before reset. */
__attribute__((section(".mailbox_header"))) volatile tkws_mailbox_t tkws_mailbox;

/* Data area after the header, up to the end of RAM (see cortex_m4.ld): audio
 * [n_blocks * block_len] first, features and scores where the header says. */
extern float tkws_mailbox_data[];

__attribute__((noinline, used)) void tkws_harness_run(void) {
    if (tkws_mailbox.magic != TKWS_MAILBOX_MAGIC) {
        /* The host wrote another layout (or nothing): read nothing, say so. */
        tkws_mailbox.frames_done = 0;
        tkws_mailbox.status = TKWS_MAILBOX_BAD_MAGIC;
        return;
    }
    const uint32_t n_blocks = tkws_mailbox.n_blocks, block_len = tkws_mailbox.block_len;
    const uint32_t n_features = tkws_mailbox.n_features, n_scores = tkws_mailbox.n_scores;
    const float *audio = tkws_mailbox_data;
    float *features = tkws_mailbox_data + tkws_mailbox.features_at;
    float *scores = tkws_mailbox_data + tkws_mailbox.scores_at;
    const int detect = tkws_mailbox.detect && detector_Process && detector_Reset;
    float *detections = tkws_mailbox_data + tkws_mailbox.detections_at;
    uint32_t skip = 0, frames = 0;
    if (tkws_mailbox.reset) {
        mfcc_Reset();
        completemodel_Reset();
        if (detect) detector_Reset();
        skip = tkws_mailbox.warmup_blocks;
    }
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
