/* Declarations of the RT-Thread kernel API the edge-link port uses, as RT-Thread 4.x documents them. Only for
 * compiling the port in the tests (-Wall -Wextra -Werror); there is no kernel behind them. */
#ifndef RTTHREAD_STUB_H
#define RTTHREAD_STUB_H
#include <stdint.h>
#include <stddef.h>
typedef int32_t rt_err_t;
typedef uint32_t rt_size_t;
typedef int32_t rt_off_t;
typedef uint32_t rt_tick_t;
typedef int32_t rt_int32_t;
typedef uint8_t rt_uint8_t;
typedef uint16_t rt_uint16_t;
typedef uint32_t rt_uint32_t;
#define RT_NULL ((void *)0)
#define RT_EOK 0
#define RT_ERROR 1
#define RT_ETIMEOUT 2
#define RT_ENOMEM 4
#define RT_WAITING_FOREVER (-1)
#define RT_IPC_FLAG_FIFO 0x00
#define RT_IPC_FLAG_PRIO 0x01
#define RT_TICK_PER_SECOND 1000
struct rt_semaphore { int dummy; };
struct rt_mutex { int dummy; };
struct rt_thread { int dummy; };
typedef struct rt_thread *rt_thread_t;
typedef struct rt_semaphore *rt_sem_t;
typedef struct rt_mutex *rt_mutex_t;
rt_err_t rt_sem_init(rt_sem_t sem, const char *name, rt_uint32_t value, rt_uint8_t flag);
rt_err_t rt_sem_take(rt_sem_t sem, rt_int32_t time);
rt_err_t rt_sem_release(rt_sem_t sem);
rt_err_t rt_mutex_init(rt_mutex_t mutex, const char *name, rt_uint8_t flag);
rt_err_t rt_mutex_take(rt_mutex_t mutex, rt_int32_t time);
rt_err_t rt_mutex_release(rt_mutex_t mutex);
rt_thread_t rt_thread_create(const char *name, void (*entry)(void *parameter), void *parameter,
                             rt_uint32_t stack_size, rt_uint8_t priority, rt_uint32_t tick);
rt_err_t rt_thread_startup(rt_thread_t thread);
rt_tick_t rt_tick_get(void);
rt_tick_t rt_tick_from_millisecond(rt_int32_t ms);
int rt_kprintf(const char *fmt, ...);
int rt_snprintf(char *buf, rt_size_t size, const char *format, ...);
#define INIT_APP_EXPORT(fn) int (*const edge_init_##fn)(void) = fn
#define MSH_CMD_EXPORT(command, desc) void (*const edge_msh_##command)(int, char **) = command
#endif
