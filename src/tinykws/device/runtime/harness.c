/* tinykws device harness: the host writes a clip's audio into a RAM mailbox, calls
 * tkws_harness_run, and reads back features and class scores.
 *
 * Exactly what firmware does with the ELL-compatible API: every 160-sample block goes
 * through mfcc_Filter; its output goes through completemodel_Predict once the featurizer's
 * window is full (after `warmup_blocks` blocks since a reset). */
#include <stdint.h>

/* The generated entry points (see featurizer.h / model.h). */
void mfcc_Filter(void *context, const float *input, float *output);
void mfcc_Reset(void);
void completemodel_Predict(void *context, const float *input, float *output);
void completemodel_Reset(void);

#define TKWS_MAILBOX_MAGIC 0x534B4B54u /* "TKKS" */

typedef struct {
    uint32_t magic;         /* TKWS_MAILBOX_MAGIC, written by the host */
    uint32_t n_blocks;      /* audio blocks in this call */
    uint32_t block_len;     /* samples per block (160) */
    uint32_t n_features;    /* featurizer outputs per block (32) */
    uint32_t n_scores;      /* model outputs per frame (classes) */
    uint32_t warmup_blocks; /* blocks after a reset before the first frame (2) */
    uint32_t reset;         /* nonzero: mfcc_Reset + completemodel_Reset first */
    uint32_t frames_done;   /* written by the device: completemodel_Predict calls */
} tkws_mailbox_t;

/* In its own section after the stack (see cortex_m4.ld): the start-up code never touches
 * it, so a host (or QEMU's loader) may fill it before reset. */
__attribute__((section(".mailbox_header"))) volatile tkws_mailbox_t tkws_mailbox;

/* Data area after the stack, up to the end of RAM (see cortex_m4.ld):
 * audio [n_blocks * block_len], features [n_blocks * n_features], scores [frames * n_scores]. */
extern float tkws_mailbox_data[];

__attribute__((noinline, used)) void tkws_harness_run(void) {
    const uint32_t n_blocks = tkws_mailbox.n_blocks, block_len = tkws_mailbox.block_len;
    const uint32_t n_features = tkws_mailbox.n_features, n_scores = tkws_mailbox.n_scores;
    const float *audio = tkws_mailbox_data;
    float *features = tkws_mailbox_data + n_blocks * block_len;
    float *scores = features + n_blocks * n_features;
    uint32_t skip = 0, frames = 0;
    if (tkws_mailbox.reset) {
        mfcc_Reset();
        completemodel_Reset();
        skip = tkws_mailbox.warmup_blocks;
    }
    for (uint32_t b = 0; b < n_blocks; b++) {
        float *feat = features + b * n_features;
        mfcc_Filter(0, audio + b * block_len, feat);
        if (b < skip) continue;
        completemodel_Predict(0, feat, scores + frames * n_scores);
        frames++;
    }
    tkws_mailbox.frames_done = frames;
}
