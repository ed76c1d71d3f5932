/* edge-link node client: see edge_link.h and PROTOCOL.md. Portable C99, no heap, no OS calls. */
#include "edge_link.h"

#include <string.h>

uint16_t edge_link_crc16(const uint8_t *data, size_t len) {
    uint16_t crc = 0xFFFF; /* CRC-16/CCITT-FALSE */
    size_t i;
    int bit;
    for (i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (bit = 0; bit < 8; bit++) {
            crc = (uint16_t)((crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1));
        }
    }
    return crc;
}

size_t edge_link_cobs_encode(const uint8_t *in, size_t len, uint8_t *out) {
    size_t read = 0, write = 1, code_at = 0;
    uint8_t code = 1;
    while (read < len) {
        if (in[read] == 0) {
            out[code_at] = code;
            code = 1;
            code_at = write++;
            read++;
        } else {
            out[write++] = in[read++];
            if (++code == 0xFF) {
                out[code_at] = code;
                code = 1;
                code_at = write++;
            }
        }
    }
    out[code_at] = code;
    return write;
}

size_t edge_link_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_max) {
    size_t read = 0, write = 0;
    while (read < len) {
        uint8_t code = in[read++];
        size_t i;
        if (code == 0 || read + code - 1 > len) return 0;
        for (i = 1; i < code; i++) {
            if (in[read] == 0 || write >= out_max) return 0;
            out[write++] = in[read++];
        }
        if (code != 0xFF && read < len) {
            if (write >= out_max) return 0;
            out[write++] = 0;
        }
    }
    return write;
}

void edge_link_init(struct edge_link *link, const struct edge_link_io *io, edge_link_handler on_message, void *user) {
    int i;
    memset(link, 0, sizeof(*link));
    link->io = *io;
    link->on_message = on_message;
    link->user = user;
    for (i = 0; i < 16; i++) link->last_rx_seq[i] = -1;
}

static int write_packet(struct edge_link *link, uint8_t type, uint8_t seq, uint8_t flags, const uint8_t *payload,
                        uint16_t len) {
    uint16_t crc;
    size_t n;
    if (len > EDGE_LINK_MAX_PAYLOAD) return EDGE_LINK_TOO_LONG;
    link->packet[0] = EDGE_LINK_VERSION;
    link->packet[1] = type;
    link->packet[2] = seq;
    link->packet[3] = flags;
    if (len) memcpy(link->packet + 4, payload, len);
    crc = edge_link_crc16(link->packet, (size_t)4 + len);
    link->packet[4 + len] = (uint8_t)(crc >> 8);
    link->packet[5 + len] = (uint8_t)(crc & 0xFF);
    n = edge_link_cobs_encode(link->packet, (size_t)6 + len, link->frame);
    link->frame[n++] = 0;
    return link->io.write(link->io.ctx, link->frame, (int)n) < 0 ? EDGE_LINK_IO : EDGE_LINK_OK;
}

static int slot(uint8_t type) { return ((type >> 4) * 2 + (type & 1)) & 15; }

/* one complete frame (without its delimiter) is in link->rx */
static int handle_frame(struct edge_link *link) {
    static const size_t header = 4;
    uint8_t decoded[EDGE_LINK_MAX_PACKET];
    size_t n = edge_link_cobs_decode(link->rx, link->rx_len, decoded, sizeof(decoded));
    uint16_t crc;
    uint8_t type, seq, flags;
    if (n < header + 2) {
        link->dropped++;
        return 0;
    }
    crc = (uint16_t)(((uint16_t)decoded[n - 2] << 8) | decoded[n - 1]);
    if (edge_link_crc16(decoded, n - 2) != crc || decoded[0] != EDGE_LINK_VERSION) {
        link->dropped++;
        return 0;
    }
    type = decoded[1];
    seq = decoded[2];
    flags = decoded[3];
    if (flags & EDGE_LINK_ACK) {
        if (link->waiting && type == link->wait_type && seq == link->wait_seq) link->acked = 1;
        return 0;
    }
    if (flags & EDGE_LINK_ACK_REQ) {
        int s = slot(type);
        if (write_packet(link, type, seq, EDGE_LINK_ACK, NULL, 0) != EDGE_LINK_OK) return 0;
        if (type == EDGE_LINK_HELLO || type == EDGE_LINK_WELCOME) { /* a (re)started peer numbers from 1 */
            int i;
            for (i = 0; i < 16; i++) link->last_rx_seq[i] = -1;
        }
        if (link->last_rx_seq[s] == (int16_t)seq) return 0; /* a retransmission: acknowledged again only */
        link->last_rx_seq[s] = (int16_t)seq;
    }
    if (link->on_message) {
        link->on_message(link, type, flags, decoded + header, (uint16_t)(n - header - 2), link->user);
    }
    return 1;
}

int edge_link_poll(struct edge_link *link) {
    uint8_t buf[64];
    int delivered = 0;
    for (;;) {
        int got = link->io.read(link->io.ctx, buf, (int)sizeof(buf));
        int i;
        if (got < 0) return EDGE_LINK_IO;
        if (got == 0) return delivered;
        for (i = 0; i < got; i++) {
            if (buf[i] == 0) {
                if (link->rx_len && !link->rx_overflow) delivered += handle_frame(link);
                else if (link->rx_overflow) link->dropped++;
                link->rx_len = 0;
                link->rx_overflow = 0;
            } else if (link->rx_len >= sizeof(link->rx)) {
                link->rx_overflow = 1; /* noise without a delimiter: skip to the next one */
            } else {
                link->rx[link->rx_len++] = buf[i];
            }
        }
    }
}

int edge_link_send(struct edge_link *link, uint8_t type, const uint8_t *payload, uint16_t len, uint8_t flags) {
    int attempt;
    if (type == EDGE_LINK_PING || type == EDGE_LINK_PONG || type == EDGE_LINK_LOG) {
        return write_packet(link, type, 0, flags, payload, len);
    }
    link->tx_seq = (uint8_t)(link->tx_seq + 1);
    link->waiting = 1;
    link->wait_type = type;
    link->wait_seq = link->tx_seq;
    link->acked = 0;
    for (attempt = 0; attempt <= EDGE_LINK_RETRIES; attempt++) {
        uint32_t start = link->io.millis(link->io.ctx);
        int rc = write_packet(link, type, link->tx_seq, (uint8_t)(flags | EDGE_LINK_ACK_REQ), payload, len);
        if (rc != EDGE_LINK_OK) {
            link->waiting = 0;
            return rc;
        }
        while ((uint32_t)(link->io.millis(link->io.ctx) - start) < EDGE_LINK_RETRY_MS) {
            if (edge_link_poll(link) == EDGE_LINK_IO) {
                link->waiting = 0;
                return EDGE_LINK_IO;
            }
            if (link->acked) {
                link->waiting = 0;
                return EDGE_LINK_OK;
            }
        }
    }
    link->waiting = 0;
    return EDGE_LINK_TIMEOUT;
}
