/*
 * Example firmware loop for a tinykws keyword spotter (see docs/device-guide.md).
 *
 *   audio driver (ISR) --int16 blocks of 160--> ring buffer --> main loop:
 *     mfcc_Step           160 samples -> 32 log-mel features (skips the 2 warm-up blocks)
 *     completemodel_Step  32 features -> class probabilities, recurrent state kept
 *     detector_Step       probabilities -> a keyword, or nothing
 *
 * The detector is generated from the run (`tinykws compile` writes detector.h/.S from
 * RUN_DIR/detector.json): its smoothing, threshold, refractory time and keyword classes
 * are the ones `tinykws detect` uses, and `tinykws verify DIR --stream AUDIO` checks on the
 * emulated Cortex-M4 that this chain gives the same detections as `tinykws detect`.
 * Nothing is typed in here: change the detector in the run and recompile.
 *
 * Board-independent: the board code calls kws_ring_push() from its audio interrupt (16 kHz
 * mono, 160 samples = 10 ms per call) and kws_poll() from its main loop. Nothing here
 * allocates memory; all state lives in the two structs below, so a board with two
 * microphones keeps two kws_stream_t.
 *
 * Build: add featurizer.S, model.S, detector.S and their headers from `tinykws compile` and
 * this file to the firmware project; compile with the float ABI the .S files were made for.
 * The same file works with the float builds and with the integer build (`--precision
 * int8`, -mfloat-abi=soft: cores without an FPU), which has the same functions; the
 * integer build also has mfcc_StepInt16 / completemodel_StepQ / detector_StepQ, which skip
 * the float conversions (docs/device-guide.md, section 5).
 */
#include <stdint.h>

#include "detector.h"
#include "featurizer.h"
#include "model.h"

#define KWS_BLOCK MFCC_INPUT_SIZE              /* samples per block: 160 = 10 ms */
#define KWS_CLASSES COMPLETEMODEL_OUTPUT_SIZE  /* model outputs */
#define KWS_RING_BLOCKS 8u                     /* power of two: 80 ms of slack */

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

/* ------------------------------------------------------------------ one audio stream */

typedef void (*kws_callback)(int category, const char *name, float score, void *user);

typedef struct {
    mfcc_state features;          /* featurizer: window and pre-emphasis state */
    completemodel_state model;    /* recurrent state: one never-reset stream */
    detector_state detector;      /* smoothing history and refractory count */
    float scores[KWS_CLASSES];    /* latest model output (probabilities) */
    uint32_t frames;              /* model steps since kws_init */
    kws_callback on_detect;
    void *user;
} kws_stream_t;

void kws_init(kws_stream_t *s, kws_callback on_detect, void *user) {
    mfcc_Init(&s->features);
    completemodel_Init(&s->model);
    detector_Init(&s->detector);
    for (int c = 0; c < KWS_CLASSES; c++) s->scores[c] = 0.0f;
    s->frames = 0;
    s->on_detect = on_detect;
    s->user = user;
}

/* One 10-ms block through featurizer, model and detector. */
void kws_process_block(kws_stream_t *s, const float *block) {
    float features[MFCC_OUTPUT_SIZE];
    float confidence;
    if (!mfcc_Step(&s->features, block, features)) return; /* window still filling */
    completemodel_Step(&s->model, features, s->scores);
    s->frames++;
    const int32_t c = detector_Step(&s->detector, s->scores, &confidence);
    if (c >= 0 && s->on_detect) s->on_detect(c, completemodel_categories[c], confidence, s->user);
}

/* Main loop: process every queued block. Returns the number of blocks processed. */
int kws_poll(kws_ring_t *ring, kws_stream_t *s) {
    int n = 0;
    while (ring->tail != ring->head) {
        kws_process_block(s, ring->blocks[ring->tail % KWS_RING_BLOCKS]);
        ring->tail++;
        n++;
    }
    return n;
}

/* A board's main() would look like this (audio_start / wait_for_interrupt are the
 * board's own functions):
 *
 *   static kws_ring_t ring;
 *   static kws_stream_t kws;
 *   static void on_keyword(int c, const char *name, float p, void *user) { led_on(c); }
 *   void audio_isr(const int16_t *pcm160) { kws_ring_push(&ring, pcm160); }
 *   int main(void) {
 *       kws_init(&kws, on_keyword, 0);
 *       audio_start(16000, 160, audio_isr);
 *       for (;;) { kws_poll(&ring, &kws); wait_for_interrupt(); }
 *   }
 */
