/*
 * edge-link node client: portable C99, no heap, no OS calls.
 *
 * The caller supplies byte read/write and a millisecond clock (struct edge_link_io); every buffer is static
 * inside struct edge_link, sized by the macros below. Protocol: PROTOCOL.md in this folder.
 *
 *   static struct edge_link link;
 *   edge_link_init(&link, &io, on_message, NULL);
 *   edge_link_send(&link, EDGE_LINK_HELLO, (const uint8_t *)"door-1\x1f" "1.0\x1f" "3", 12, 0);
 *   for (;;) edge_link_poll(&link);      // from a thread, or the main loop
 */
#ifndef EDGE_LINK_H
#define EDGE_LINK_H

#include <stddef.h>
#include <stdint.h>

#ifndef EDGE_LINK_MAX_PAYLOAD
#define EDGE_LINK_MAX_PAYLOAD 240 /* bytes of payload per packet (the protocol's maximum) */
#endif
#ifndef EDGE_LINK_RETRY_MS
#define EDGE_LINK_RETRY_MS 250
#endif
#ifndef EDGE_LINK_RETRIES
#define EDGE_LINK_RETRIES 5
#endif
#define EDGE_LINK_VERSION 1
#define EDGE_LINK_MAX_PACKET (4 + EDGE_LINK_MAX_PAYLOAD + 2)
#define EDGE_LINK_MAX_FRAME (EDGE_LINK_MAX_PACKET + EDGE_LINK_MAX_PACKET / 254 + 2) /* COBS + delimiter */

enum edge_link_type {
    EDGE_LINK_HELLO = 0x01, EDGE_LINK_WELCOME = 0x02, EDGE_LINK_PING = 0x03, EDGE_LINK_PONG = 0x04,
    EDGE_LINK_COUNTS_Q = 0x10, EDGE_LINK_COUNTS = 0x11, EDGE_LINK_ASK = 0x20, EDGE_LINK_ANSWER = 0x21,
    EDGE_LINK_SUBSCRIBE = 0x30, EDGE_LINK_EVENT = 0x31, EDGE_LINK_SENSOR = 0x40, EDGE_LINK_LOG = 0x50
};
enum edge_link_flag { EDGE_LINK_ACK_REQ = 1, EDGE_LINK_ACK = 2, EDGE_LINK_MORE = 4 };
enum edge_link_status { EDGE_LINK_OK = 0, EDGE_LINK_TIMEOUT = -1, EDGE_LINK_TOO_LONG = -2, EDGE_LINK_IO = -3 };

struct edge_link_io {
    /* read up to max bytes that are available now (0 if none; never blocks for long); <0 on error */
    int (*read)(void *ctx, uint8_t *buf, int max);
    /* write len bytes (all of them); <0 on error */
    int (*write)(void *ctx, const uint8_t *buf, int len);
    uint32_t (*millis)(void *ctx); /* a free-running millisecond clock */
    void *ctx;
};

struct edge_link;
/* a new message: type, flags (EDGE_LINK_MORE on all chunks of a long answer but the last), payload */
typedef void (*edge_link_handler)(struct edge_link *link, uint8_t type, uint8_t flags, const uint8_t *payload,
                                  uint16_t len, void *user);

struct edge_link {
    struct edge_link_io io;
    edge_link_handler on_message;
    void *user;
    uint8_t rx[EDGE_LINK_MAX_FRAME];
    uint16_t rx_len;
    uint8_t rx_overflow;
    uint8_t packet[EDGE_LINK_MAX_PACKET];
    uint8_t frame[EDGE_LINK_MAX_FRAME];
    uint8_t tx_seq;
    uint8_t waiting; /* an ACK is awaited for (wait_type, wait_seq) */
    uint8_t wait_type, wait_seq, acked;
    int16_t last_rx_seq[16]; /* per type slot: the last delivered sequence number, -1 = none */
    uint32_t dropped;        /* frames discarded (noise, CRC) */
};

void edge_link_init(struct edge_link *link, const struct edge_link_io *io, edge_link_handler on_message, void *user);
/* read what is available, deliver complete messages; returns how many were delivered, or EDGE_LINK_IO */
int edge_link_poll(struct edge_link *link);
/* send one message; types other than PING, PONG and LOG wait for the ACK (polling meanwhile, so
 * incoming messages are delivered) and are retransmitted; EDGE_LINK_OK or a negative status */
int edge_link_send(struct edge_link *link, uint8_t type, const uint8_t *payload, uint16_t len, uint8_t flags);

/* building blocks, exposed for tests */
uint16_t edge_link_crc16(const uint8_t *data, size_t len);
size_t edge_link_cobs_encode(const uint8_t *in, size_t len, uint8_t *out);
/* returns the decoded length, or 0 on a malformed input */
size_t edge_link_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_max);

#endif
