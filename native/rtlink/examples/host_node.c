/* A node on a POSIX host (a pty or a USB serial adapter): the same client code an MCU runs, driven from a
 * terminal device. Used by the tests; also a template for a port.
 *
 *   host_node DEVICE NODE_ID PLACE QUESTION [sub]
 * prints one line per reply: "welcome ...", "pong ...", "counts ...", "answer ..."; with "sub" it then sends a
 * sensor reading, subscribes to events and waits for one ("event ...").
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../edge_link.h"

static int fd = -1;
static char answer[2048];
static size_t answer_len;
static int answer_done, welcomed, ponged, counted, evented;

static int port_read(void *ctx, uint8_t *buf, int max) {
    ssize_t n = read(fd, buf, (size_t)max);
    (void)ctx;
    if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    return (int)n;
}

static int port_write(void *ctx, const uint8_t *buf, int len) {
    int done = 0;
    (void)ctx;
    while (done < len) {
        ssize_t n = write(fd, buf + done, (size_t)(len - done));
        if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
        if (n > 0) done += (int)n;
    }
    return len;
}

static uint32_t now_ms(void *ctx) {
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)(ts.tv_sec * 1000u + ts.tv_nsec / 1000000);
}

static void on_message(struct edge_link *link, uint8_t type, uint8_t flags, const uint8_t *p, uint16_t len, void *u) {
    (void)link;
    (void)u;
    if (type == EDGE_LINK_WELCOME) {
        printf("welcome %.*s\n", (int)len, (const char *)p);
        welcomed = 1;
    } else if (type == EDGE_LINK_PONG) {
        printf("pong %.*s\n", (int)len, (const char *)p);
        ponged = 1;
    } else if (type == EDGE_LINK_COUNTS) {
        printf("counts %.*s\n", (int)len, (const char *)p);
        counted = 1;
    } else if (type == EDGE_LINK_EVENT) {
        printf("event %.*s\n", (int)len, (const char *)p);
        evented = 1;
    } else if (type == EDGE_LINK_ANSWER) {
        const uint8_t *sep = memchr(p, 0x1f, len); /* request id, then the text chunk */
        size_t skip = sep ? (size_t)(sep - p) + 1 : 0;
        if (answer_len + (len - skip) < sizeof(answer)) {
            memcpy(answer + answer_len, p + skip, len - skip);
            answer_len += len - skip;
        }
        if (!(flags & EDGE_LINK_MORE)) answer_done = 1;
    }
    fflush(stdout);
}

static int wait_for(struct edge_link *link, int *flag) {
    uint32_t start = now_ms(NULL);
    while (!*flag) {
        if (edge_link_poll(link) < 0 || now_ms(NULL) - start > 20000) return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    static struct edge_link link;
    struct edge_link_io io = {port_read, port_write, now_ms, NULL};
    struct termios t;
    char buf[EDGE_LINK_MAX_PAYLOAD];
    int n;
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: host_node DEVICE NODE_ID PLACE QUESTION [sub]\n");
        return 2;
    }
    fd = open(argv[1], O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 || tcgetattr(fd, &t) != 0) {
        perror(argv[1]);
        return 2;
    }
    /* raw mode, as cfmakeraw() (not in POSIX) */
    t.c_iflag &= (tcflag_t) ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_oflag &= (tcflag_t) ~OPOST;
    t.c_lflag &= (tcflag_t) ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= (tcflag_t) ~(CSIZE | PARENB);
    t.c_cflag |= CS8;
    tcsetattr(fd, TCSANOW, &t);
    edge_link_init(&link, &io, on_message, NULL);
    n = snprintf(buf, sizeof(buf), "%s\x1f" "1.0\x1f" "15", argv[2]);
    if (edge_link_send(&link, EDGE_LINK_HELLO, (const uint8_t *)buf, (uint16_t)n, 0) != EDGE_LINK_OK) return 3;
    if (wait_for(&link, &welcomed)) return 3;
    edge_link_send(&link, EDGE_LINK_PING, (const uint8_t *)"hi", 2, 0);
    if (wait_for(&link, &ponged)) return 4;
    n = snprintf(buf, sizeof(buf), "q1\x1f%s\x1f" "0", argv[3]);
    if (edge_link_send(&link, EDGE_LINK_COUNTS_Q, (const uint8_t *)buf, (uint16_t)n, 0) != EDGE_LINK_OK) return 5;
    if (wait_for(&link, &counted)) return 5;
    n = snprintf(buf, sizeof(buf), "a1\x1f%s", argv[4]);
    if (n >= (int)sizeof(buf)) n = (int)sizeof(buf) - 1; /* a longer question is cut */
    if (edge_link_send(&link, EDGE_LINK_ASK, (const uint8_t *)buf, (uint16_t)n, 0) != EDGE_LINK_OK) return 6;
    if (wait_for(&link, &answer_done)) return 6;
    printf("answer %.*s\n", (int)answer_len, answer);
    fflush(stdout);
    if (argc == 5) return 0;
    if (edge_link_send(&link, EDGE_LINK_SENSOR, (const uint8_t *)"door_open\x1f" "1", 11, 0) != EDGE_LINK_OK) return 7;
    if (edge_link_send(&link, EDGE_LINK_SUBSCRIBE, (const uint8_t *)"1", 1, 0) != EDGE_LINK_OK) return 8;
    printf("subscribed\n");
    fflush(stdout);
    if (wait_for(&link, &evented)) return 9;
    printf("dropped %lu\n", (unsigned long)link.dropped);
    return 0;
}
