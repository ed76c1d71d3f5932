/* The device API the port uses (RT-Thread 4.x documentation); see rtthread.h here. */
#ifndef RTDEVICE_STUB_H
#define RTDEVICE_STUB_H
#include "rtthread.h"
struct rt_device { int dummy; };
typedef struct rt_device *rt_device_t;
#define RT_DEVICE_FLAG_INT_RX 0x100
rt_device_t rt_device_find(const char *name);
rt_err_t rt_device_open(rt_device_t dev, rt_uint16_t oflag);
rt_size_t rt_device_read(rt_device_t dev, rt_off_t pos, void *buffer, rt_size_t size);
rt_size_t rt_device_write(rt_device_t dev, rt_off_t pos, const void *buffer, rt_size_t size);
rt_err_t rt_device_set_rx_indicate(rt_device_t dev, rt_err_t (*rx_ind)(rt_device_t dev, rt_size_t size));
#endif
