/*
 * A bare-metal node for the emulated LM3S6965 (Cortex-M3; qemu-system-arm -M lm3s6965evb): the edge-link
 * client on UART0 (wired to the gateway), a console on UART1, SysTick as the millisecond clock. It says
 * hello, reports a sensor reading, asks for a count and a question, prints the replies on the console and
 * then "done". No heap, no C library.
 */
#include <stddef.h>
#include <stdint.h>

#include "../edge_link.h"

#define UART0 0x4000C000u /* PL011: data at +0x00, flags at +0x18 (RXFE bit 4, TXFF bit 5) */
#define UART1 0x4000D000u
#define REG(addr) (*(volatile uint32_t *)(addr))
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)

static volatile uint32_t ticks_ms;
static struct edge_link link;
static char answer[512];
static unsigned answer_len;
static int got_welcome, got_counts, got_answer;

/* the compiler may emit calls to these; the client itself uses memcpy and memset */
void *memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) *d++ = *s++;
    return dst;
}
void *memset(void *dst, int c, size_t n) {
    uint8_t *d = dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}
void *memchr(const void *p, int c, size_t n) {
    const uint8_t *s = p;
    for (; n; n--, s++)
        if (*s == (uint8_t)c) return (void *)(uintptr_t)s;
    return NULL;
}

static void console(const char *s, unsigned n) {
    unsigned i;
    for (i = 0; i < n; i++) {
        while (REG(UART1 + 0x18) & (1u << 5)) {
        }
        REG(UART1) = (uint8_t)s[i];
    }
}
static void say(const char *s) {
    unsigned n = 0;
    while (s[n]) n++;
    console(s, n);
}

static int link_read(void *ctx, uint8_t *buf, int max) {
    int n = 0;
    (void)ctx;
    while (n < max && !(REG(UART0 + 0x18) & (1u << 4))) buf[n++] = (uint8_t)REG(UART0);
    return n;
}
static int link_write(void *ctx, const uint8_t *buf, int len) {
    int i;
    (void)ctx;
    for (i = 0; i < len; i++) {
        while (REG(UART0 + 0x18) & (1u << 5)) {
        }
        REG(UART0) = buf[i];
    }
    return len;
}
static uint32_t link_millis(void *ctx) {
    (void)ctx;
    return ticks_ms;
}

static void on_message(struct edge_link *l, uint8_t type, uint8_t flags, const uint8_t *p, uint16_t len, void *u) {
    (void)l;
    (void)u;
    if (type == EDGE_LINK_WELCOME) {
        got_welcome = 1;
    } else if (type == EDGE_LINK_COUNTS) {
        say("counts ");
        console((const char *)p, len);
        say("\n");
        got_counts = 1;
    } else if (type == EDGE_LINK_ANSWER) {
        const uint8_t *sep = memchr(p, 0x1f, len);
        unsigned skip = sep ? (unsigned)(sep - p) + 1 : 0, i;
        for (i = skip; i < len && answer_len < sizeof(answer); i++) answer[answer_len++] = (char)p[i];
        if (!(flags & EDGE_LINK_MORE)) got_answer = 1;
    }
}

static void wait_for(volatile int *flag) {
    while (!*flag) edge_link_poll(&link);
}

static int send_text(uint8_t type, const char *text) {
    unsigned n = 0;
    while (text[n]) n++;
    return edge_link_send(&link, type, (const uint8_t *)text, (uint16_t)n, 0);
}

int main(void) {
    static const struct edge_link_io io = {link_read, link_write, link_millis, NULL};
    SYST_RVR = 12000u - 1u; /* 1 ms at the 12 MHz clock qemu gives this board */
    SYST_CVR = 0;
    SYST_CSR = 7u; /* enable, interrupt, processor clock */
    edge_link_init(&link, &io, on_message, NULL);
    say("firmware up\n");
    if (send_text(EDGE_LINK_HELLO, "mcu-1\x1f" "0.1\x1f" "15") != EDGE_LINK_OK) say("no ack for hello\n");
    wait_for(&got_welcome);
    if (send_text(EDGE_LINK_SENSOR, "door_open\x1f" "1") != EDGE_LINK_OK) say("no ack for the reading\n");
    if (send_text(EDGE_LINK_COUNTS_Q, "c1\x1fwalkway\x1f" "0") != EDGE_LINK_OK) say("no ack for counts\n");
    wait_for(&got_counts);
    if (send_text(EDGE_LINK_ASK, "a1\x1fHow many people crossed the walkway line yesterday?") != EDGE_LINK_OK)
        say("no ack for ask\n");
    wait_for(&got_answer);
    say("answer ");
    console(answer, answer_len);
    say("\ndone\n");
    for (;;) edge_link_poll(&link);
}

/* start-up: vector table, .data copy, .bss zeroing */
extern uint32_t _etext, _sdata, _edata, _sbss, _ebss, _stack_top;
void reset_handler(void);
void systick_handler(void);
static void default_handler(void) {
    for (;;) {
    }
}
void systick_handler(void) { ticks_ms++; }
void reset_handler(void) {
    uint32_t *src = &_etext, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    main();
}
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&_stack_top), reset_handler, default_handler, default_handler, default_handler,
    default_handler, default_handler, 0, 0, 0, 0, default_handler, default_handler, 0, default_handler,
    systick_handler,
};
