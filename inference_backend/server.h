/* HTTP/1.1 server: one epoll loop per thread over shared listening sockets. */
#ifndef MLG_SERVER_H
#define MLG_SERVER_H

#include <stddef.h>

#include "protocol.h"

typedef struct {
    size_t    max_body;            /* bytes */
    long      request_timeout_ms;  /* first byte of a request to its end */
    long      idle_timeout_ms;     /* keep-alive connection without a request */
    int       threads;
} mlg_server_conf_t;

/* Registry access, shared with the reloader in main.c. */
mlg_registry_t *mlg_registry_acquire(void);
void mlg_registry_release(mlg_registry_t *reg);
/* reg->models[i] = prev->models[i], shared (a model that failed to reload). */
void mlg_registry_adopt(mlg_registry_t *reg, const mlg_registry_t *prev,
    size_t i);
/* Publishes reg (holding one reference for the server); drops the old one. */
void mlg_registry_publish(mlg_registry_t *reg);

/* Starts the worker threads on the listening fds; 0 or -1. */
int mlg_server_start(const mlg_server_conf_t *conf, const int *listen_fds,
    int n_listen);
/* Wakes the workers, closes every connection, joins the threads. */
void mlg_server_stop(void);

void mlg_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
