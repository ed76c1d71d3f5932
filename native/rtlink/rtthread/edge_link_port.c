/*
 * edge-link on RT-Thread: the UART through the device API, a receive thread woken by the RX indication,
 * and msh commands:
 *
 *   edge counts walkway          how many crossed the walkway line (since counting began)
 *   edge ask "how many people crossed?"
 *   edge sub on|off              event notifications
 *
 * Kept thin: everything protocol-related is in ../edge_link.c (portable, tested on the host).
 */
#include <rtthread.h>
#include <rtdevice.h>
#include <string.h>

#include "edge_link.h"

#ifndef EDGE_LINK_UART_NAME
#define EDGE_LINK_UART_NAME "uart2"
#endif
#ifndef EDGE_LINK_NODE_ID
#define EDGE_LINK_NODE_ID "rtt-node"
#endif
#ifndef EDGE_LINK_THREAD_STACK
#define EDGE_LINK_THREAD_STACK 2048
#endif
#ifndef EDGE_LINK_THREAD_PRIORITY
#define EDGE_LINK_THREAD_PRIORITY 20
#endif

static rt_device_t uart;
static struct rt_semaphore rx_sem;
static struct rt_mutex link_lock;
static struct edge_link link;

static rt_err_t on_rx(rt_device_t dev, rt_size_t size) {
    (void)dev;
    (void)size;
    return rt_sem_release(&rx_sem);
}

static int port_read(void *ctx, uint8_t *buf, int max) {
    (void)ctx;
    return (int)rt_device_read(uart, -1, buf, (rt_size_t)max);
}

static int port_write(void *ctx, const uint8_t *buf, int len) {
    (void)ctx;
    return (int)rt_device_write(uart, 0, buf, (rt_size_t)len) == len ? len : -1;
}

static uint32_t port_millis(void *ctx) {
    (void)ctx;
    return (uint32_t)((uint64_t)rt_tick_get() * 1000u / RT_TICK_PER_SECOND);
}

static void on_message(struct edge_link *l, uint8_t type, uint8_t flags, const uint8_t *p, uint16_t len, void *u) {
    (void)l;
    (void)u;
    /* fields are separated by 0x1F; printed as they come (an answer may arrive in several chunks) */
    rt_kprintf("[edge] %02x%s %.*s\n", type, (flags & EDGE_LINK_MORE) ? "+" : "", (int)len, (const char *)p);
}

static void rx_thread(void *param) {
    (void)param;
    for (;;) {
        rt_sem_take(&rx_sem, rt_tick_from_millisecond(100));
        rt_mutex_take(&link_lock, RT_WAITING_FOREVER);
        edge_link_poll(&link);
        rt_mutex_release(&link_lock);
    }
}

static int send_locked(uint8_t type, const char *payload) {
    int rc;
    rt_mutex_take(&link_lock, RT_WAITING_FOREVER);
    rc = edge_link_send(&link, type, (const uint8_t *)payload, (uint16_t)strlen(payload), 0);
    rt_mutex_release(&link_lock);
    return rc;
}

int edge_link_start(void) {
    static const struct edge_link_io io = {port_read, port_write, port_millis, RT_NULL};
    rt_thread_t tid;
    uart = rt_device_find(EDGE_LINK_UART_NAME);
    if (uart == RT_NULL) {
        rt_kprintf("[edge] no device %s\n", EDGE_LINK_UART_NAME);
        return -RT_ERROR;
    }
    rt_sem_init(&rx_sem, "edge_rx", 0, RT_IPC_FLAG_FIFO);
    rt_mutex_init(&link_lock, "edge_lk", RT_IPC_FLAG_PRIO);
    if (rt_device_open(uart, RT_DEVICE_FLAG_INT_RX) != RT_EOK) {
        rt_kprintf("[edge] cannot open %s\n", EDGE_LINK_UART_NAME);
        return -RT_ERROR;
    }
    rt_device_set_rx_indicate(uart, on_rx);
    edge_link_init(&link, &io, on_message, RT_NULL);
    tid = rt_thread_create("edge_rx", rx_thread, RT_NULL, EDGE_LINK_THREAD_STACK, EDGE_LINK_THREAD_PRIORITY, 10);
    if (tid == RT_NULL) return -RT_ENOMEM;
    rt_thread_startup(tid);
    return send_locked(EDGE_LINK_HELLO, EDGE_LINK_NODE_ID "\x1f" "1.0\x1f" "15") == EDGE_LINK_OK ? RT_EOK : -RT_ETIMEOUT;
}
INIT_APP_EXPORT(edge_link_start);

static void edge(int argc, char **argv) {
    static char payload[EDGE_LINK_MAX_PAYLOAD + 1];
    int rc = EDGE_LINK_OK;
    if (argc >= 3 && strcmp(argv[1], "counts") == 0) {
        rt_snprintf(payload, sizeof(payload), "m1\x1f%s\x1f%s", argv[2], argc >= 4 ? argv[3] : "0");
        rc = send_locked(EDGE_LINK_COUNTS_Q, payload);
    } else if (argc >= 3 && strcmp(argv[1], "ask") == 0) {
        rt_snprintf(payload, sizeof(payload), "m2\x1f%s", argv[2]);
        rc = send_locked(EDGE_LINK_ASK, payload);
    } else if (argc >= 3 && strcmp(argv[1], "sub") == 0) {
        rc = send_locked(EDGE_LINK_SUBSCRIBE, strcmp(argv[2], "on") == 0 ? "1" : "0");
    } else {
        rt_kprintf("usage: edge counts NAME [WINDOW_S] | edge ask \"QUESTION\" | edge sub on|off\n");
        return;
    }
    if (rc != EDGE_LINK_OK) rt_kprintf("[edge] no answer from the gateway (%d)\n", rc);
}
MSH_CMD_EXPORT(edge, edge-link: counts / ask / sub);
