/* tinykws bare-metal start-up for the emulated Cortex-M4 test image.
 *
 * Vector table, reset handler (copy .data, zero .bss, enable the FPU for hard float) and the
 * two addresses the host watches: tkws_done (normal end: the host stops emulation when the
 * PC reaches it) and tkws_fault (every fault handler). Also memcpy/memset/memmove, since the
 * image links no C library and compilers may emit calls to them.
 */
#include <stddef.h>
#include <stdint.h>

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _estack[];

void Reset_Handler(void);
void tkws_done(void);
void tkws_fault(void);
void tkws_harness_run(void);

/* Cortex-M vector table: initial SP, reset, NMI, HardFault, MemManage, BusFault, UsageFault,
 * 4 reserved, SVCall, DebugMon, reserved, PendSV, SysTick. */
__attribute__((section(".vectors"), used)) void (*const tkws_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)_estack,
    Reset_Handler, tkws_fault, tkws_fault, tkws_fault, tkws_fault, tkws_fault,
    0, 0, 0, 0, tkws_fault, tkws_fault, 0, tkws_fault, tkws_fault,
};

/* The host stops emulation when the PC reaches this address. */
__attribute__((noinline, used)) void tkws_done(void) {
    for (;;) __asm volatile("bkpt #0");
}

__attribute__((noinline, used)) void tkws_fault(void) {
    for (;;) __asm volatile("bkpt #1");
}

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

void Reset_Handler(void) {
    for (uint32_t *src = _sidata, *dst = _sdata; dst < _edata;) *dst++ = *src++;
    for (uint32_t *dst = _sbss; dst < _ebss;) *dst++ = 0;
#if defined(__ARM_FP)
    SCB_CPACR |= 0xFu << 20; /* CP10, CP11: full access to the FPU */
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
#if defined(TKWS_AUTORUN)
    /* QEMU build: run the harness once on the mailbox loaded with the image, then end the
     * emulation through semihosting (SYS_EXIT, ADP_Stopped_ApplicationExit). */
    tkws_harness_run();
    register uint32_t op __asm("r0") = 0x18u;
    register uint32_t arg __asm("r1") = 0x20026u;
    __asm volatile("bkpt #0xAB" : : "r"(op), "r"(arg) : "memory");
#endif
    tkws_done();
}

/* Word-at-a-time when aligned, like a C library's; this file is compiled with -fno-builtin
 * so the loops are not turned back into calls to themselves. */
void *memcpy(void *restrict dst, const void *restrict src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    if ((((uintptr_t)d | (uintptr_t)s) & 3u) == 0) {
        for (; n >= 4; n -= 4, d += 4, s += 4) *(uint32_t *)(void *)d = *(const uint32_t *)(const void *)s;
    }
    while (n--) *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d == s || n == 0) return dst;
    if (d < s) return memcpy(dst, src, n);
    while (n--) d[n] = s[n];
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    if (((uintptr_t)d & 3u) == 0) {
        uint32_t w = (unsigned char)c * 0x01010101u;
        for (; n >= 4; n -= 4, d += 4) *(uint32_t *)(void *)d = w;
    }
    while (n--) *d++ = (unsigned char)c;
    return dst;
}
