/* libFuzzer target: arbitrary bytes arriving on the line, fed to the client's frame parser, and straight to
 * the COBS decoder. Built with -fsanitize=fuzzer,address,undefined; a crash, a sanitizer report or a
 * hang is a failure. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../edge_link.h"

static const uint8_t *input;
static size_t input_len, input_pos;
static uint32_t clock_ms;
static unsigned delivered;

static int fuzz_read(void *ctx, uint8_t *buf, int max) {
    size_t n = input_len - input_pos;
    (void)ctx;
    if (n > (size_t)max) n = (size_t)max;
    if (n > 7) n = 7; /* odd-sized reads: frames split across calls */
    memcpy(buf, input + input_pos, n);
    input_pos += n;
    return (int)n;
}

static int fuzz_write(void *ctx, const uint8_t *buf, int len) {
    (void)ctx;
    (void)buf;
    return len;
}

static uint32_t fuzz_millis(void *ctx) {
    (void)ctx;
    return clock_ms += 50;
}

static void on_message(struct edge_link *l, uint8_t type, uint8_t flags, const uint8_t *p, uint16_t len, void *u) {
    (void)l;
    (void)type;
    (void)flags;
    (void)u;
    if (len > EDGE_LINK_MAX_PAYLOAD) __builtin_trap();
    if (len) delivered += p[len - 1]; /* touch the whole payload */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct edge_link link;
    struct edge_link_io io = {fuzz_read, fuzz_write, fuzz_millis, NULL};
    uint8_t out[EDGE_LINK_MAX_PACKET];
    input = data;
    input_len = size;
    input_pos = 0;
    edge_link_init(&link, &io, on_message, NULL);
    while (input_pos < input_len) edge_link_poll(&link);
    /* a send while the fuzz input plays the peer: exercises the ACK wait and retransmission paths */
    input_pos = 0;
    edge_link_send(&link, EDGE_LINK_SENSOR, data, (uint16_t)(size < EDGE_LINK_MAX_PAYLOAD ? size : 0), 0);
    edge_link_cobs_decode(data, size, out, sizeof(out));
    return 0;
}
