/*
 * Example firmware loop for a tinykws keyword spotter (see docs/device-guide.md).
 *
 *   audio driver (ISR) --int16 blocks of 160--> ring buffer --> main loop:
 *     mfcc_Filter (160 samples -> 32 log-mel features)
 *     completemodel_Predict (32 features -> class probabilities, state kept between calls)
 *     posterior smoothing (moving average over the last KWS_SMOOTH_FRAMES frames)
 *     detection: a keyword whose smoothed probability crosses the threshold -> callback,
 *     then a refractory period so one utterance gives one detection.
 *
 * Board-independent: the board code calls kws_ring_push() from its audio interrupt (16 kHz
 * mono, 160 samples = 10 ms per call) and kws_poll() from its main loop. Nothing here
 * allocates memory; all state lives in the two structs below.
 *
 * Build: add featurizer.S, model.S, featurizer.h and model.h from `tinykws compile` and this
 * file to the firmware project; compile with the float ABI the .S files were made for.
 */
#include <stdint.h>

#include "featurizer.h"
#include "model.h"

#define KWS_BLOCK MFCC_INPUT_SIZE              /* samples per block: 160 = 10 ms */
#define KWS_CLASSES COMPLETEMODEL_OUTPUT_SIZE  /* model outputs */
#define KWS_RING_BLOCKS 8u                     /* power of two: 80 ms of slack */
#define KWS_SMOOTH_FRAMES 30                   /* posterior smoothing window: 300 ms */
#define KWS_REFRACTORY_FRAMES 100              /* 1 s without a new detection */

/* ------------------------------------------------------------------ ring buffer */

/* Single producer (audio ISR) / single consumer (main loop): head is written only by the
 * producer, tail only by the consumer, so no lock is needed on a Cortex-M. */
typedef struct {
    float blocks[KWS_RING_BLOCKS][KWS_BLOCK]; /* int16-scale samples, as tinykws trains on */
    volatile uint32_t head;                   /* blocks written (wraps) */
    volatile uint32_t tail;                   /* blocks consumed (wraps) */
    volatile uint32_t overruns;               /* blocks dropped because the loop fell behind */
} kws_ring_t;

/* Producer: copy one 160-sample block of 16-bit PCM. Returns 0, or -1 when full. */
int kws_ring_push(kws_ring_t *ring, const int16_t *pcm) {
    if (ring->head - ring->tail >= KWS_RING_BLOCKS) {
        ring->overruns++;
        return -1;
    }
    float *dst = ring->blocks[ring->head % KWS_RING_BLOCKS];
    for (int i = 0; i < KWS_BLOCK; i++) dst[i] = (float)pcm[i]; /* no scaling to [-1, 1] */
    ring->head++;
    return 0;
}

/* ------------------------------------------------------------------ detector */

typedef void (*kws_callback)(int category, const char *name, float score, void *user);

typedef struct {
    float history[KWS_SMOOTH_FRAMES][KWS_CLASSES]; /* last frames' probabilities */
    float sum[KWS_CLASSES];                        /* running sum of history */
    int pos;                                       /* next history row to overwrite */
    int filled;                                    /* rows in use (<= KWS_SMOOTH_FRAMES) */
    int refractory;                                /* frames left without detections */
    float threshold;                               /* smoothed probability to detect */
    kws_callback on_detect;
    void *user;
    float scores[KWS_CLASSES];                     /* latest raw model output */
    uint32_t frames;                               /* frames seen since kws_init */
} kws_detector_t;

void kws_init(kws_detector_t *d, float threshold, kws_callback on_detect, void *user) {
    for (int t = 0; t < KWS_SMOOTH_FRAMES; t++)
        for (int c = 0; c < KWS_CLASSES; c++) d->history[t][c] = 0.0f;
    for (int c = 0; c < KWS_CLASSES; c++) d->sum[c] = d->scores[c] = 0.0f;
    d->pos = d->filled = d->refractory = 0;
    d->threshold = threshold;
    d->on_detect = on_detect;
    d->user = user;
    d->frames = 0;
    mfcc_Reset();          /* empty window, pre-emphasis state 0 */
    completemodel_Reset(); /* zero recurrent state */
}

/* Classes whose name starts with '_' (_silence_, _unknown_) are never reported. */
static int is_keyword(int c) { return completemodel_categories[c][0] != '_'; }

/* One 10-ms block through featurizer, model, smoothing and detection. */
void kws_process_block(kws_detector_t *d, const float *block) {
    float features[MFCC_OUTPUT_SIZE];
    mfcc_Filter(0, block, features);
    if (!mfcc_IsFrameValid()) return; /* the first 2 blocks after a reset fill the window */
    completemodel_Predict(0, features, d->scores);
    d->frames++;

    /* moving average: replace the oldest row of the history in the running sum */
    float *row = d->history[d->pos];
    for (int c = 0; c < KWS_CLASSES; c++) {
        d->sum[c] += d->scores[c] - row[c];
        row[c] = d->scores[c];
    }
    d->pos = (d->pos + 1) % KWS_SMOOTH_FRAMES;
    if (d->filled < KWS_SMOOTH_FRAMES) d->filled++;

    if (d->refractory > 0) {
        d->refractory--;
        return;
    }
    int best = -1;
    float best_score = 0.0f;
    for (int c = 0; c < KWS_CLASSES; c++) {
        float smoothed = d->sum[c] / (float)d->filled;
        if (is_keyword(c) && smoothed > best_score) {
            best = c;
            best_score = smoothed;
        }
    }
    if (best >= 0 && best_score >= d->threshold) {
        d->refractory = KWS_REFRACTORY_FRAMES;
        if (d->on_detect) d->on_detect(best, completemodel_categories[best], best_score, d->user);
    }
}

/* Main loop: process every queued block. Returns the number of blocks processed. */
int kws_poll(kws_ring_t *ring, kws_detector_t *d) {
    int n = 0;
    while (ring->tail != ring->head) {
        kws_process_block(d, ring->blocks[ring->tail % KWS_RING_BLOCKS]);
        ring->tail++;
        n++;
    }
    return n;
}

/* A board's main() would look like this (audio_start / wait_for_interrupt are the
 * board's own functions):
 *
 *   static kws_ring_t ring;
 *   static kws_detector_t det;
 *   static void on_keyword(int c, const char *name, float p, void *user) { led_on(c); }
 *   void audio_isr(const int16_t *pcm160) { kws_ring_push(&ring, pcm160); }
 *   int main(void) {
 *       kws_init(&det, 0.8f, on_keyword, 0);
 *       audio_start(16000, 160, audio_isr);
 *       for (;;) { kws_poll(&ring, &det); wait_for_interrupt(); }
 *   }
 */
