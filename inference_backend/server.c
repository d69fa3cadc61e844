/*
 * Event loops.  Every worker thread has its own epoll set holding the shared
 * listening sockets (EPOLLEXCLUSIVE: one worker woken per connection), its
 * connections and a shared eventfd that signals shutdown.  Requests are
 * parsed with http_parser and answered synchronously on the thread that
 * read them; pipelined requests are answered in order.
 */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#define MAX_TARGET      8192
#define READ_CHUNK      65536
#define OUT_HIGH_WATER  (4u << 20)   /* stop reading while this much is unsent */

typedef struct conn_s conn_t;

typedef struct {
    int                       epfd;
    pthread_t                 tid;
    const mlg_server_conf_t  *conf;
    conn_t                   *conns;      /* doubly linked, for timeouts */
    mlg_scratch_t             scratch;
    mlg_response_t            resp;
    char                     *readbuf;
    int                       accept_paused;  /* out of fds: listeners off */
} worker_t;

struct conn_s {
    int            fd;
    worker_t      *w;
    conn_t        *prev, *next;
    http_parser    parser;
    mlg_buf_t      target;
    mlg_buf_t      body;
    mlg_buf_t      out;
    size_t         out_off;
    long long      request_start;   /* ms; 0 = between requests */
    long long      last_active;     /* ms */
    int            closing;         /* close once out is flushed */
    uint32_t       events;          /* epoll mask registered */
    int            in_message;
    int            expect_continue;
    int            header_state;    /* 1: current header field is Expect */
    char           hname[16];
    size_t         hname_len;
    int            rejected;        /* response already queued for this message */
};

static pthread_mutex_t   reg_lock = PTHREAD_MUTEX_INITIALIZER;
static mlg_registry_t   *reg_current;
static worker_t         *workers;
static int               n_workers;
static int               stop_fd = -1;
static int               listen_fd_list[8];
static int               n_listen_fds;

void
mlg_log(const char *fmt, ...)
{
    char             line[1024];
    struct timespec  ts;
    struct tm        tm;
    va_list          ap;
    int              n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = (int) strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ml-guard-backend: ",
                       &tm);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t) n - 1, fmt, ap);
    va_end(ap);
    strcat(line, "\n");
    fputs(line, stderr);
}

static void
registry_free(mlg_registry_t *reg)
{
    size_t               i;
    mlg_served_model_t  *sm;

    for (i = 0; i < reg->n; i++) {
        sm = reg->models[i];
        if (--sm->refs == 0) {
            mlg_model_free(sm->model);
            free(sm->name);
            free(sm->path);
            free(sm);
        }
    }
    free(reg->models);
    free(reg);
}

void
mlg_registry_adopt(mlg_registry_t *reg, const mlg_registry_t *prev, size_t i)
{
    pthread_mutex_lock(&reg_lock);
    prev->models[i]->refs++;
    reg->models[i] = prev->models[i];
    pthread_mutex_unlock(&reg_lock);
}

mlg_registry_t *
mlg_registry_acquire(void)
{
    mlg_registry_t  *reg;

    pthread_mutex_lock(&reg_lock);
    reg = reg_current;
    reg->refs++;
    pthread_mutex_unlock(&reg_lock);
    return reg;
}

void
mlg_registry_release(mlg_registry_t *reg)
{
    pthread_mutex_lock(&reg_lock);
    if (--reg->refs == 0) {
        registry_free(reg);
    }
    pthread_mutex_unlock(&reg_lock);
}

void
mlg_registry_publish(mlg_registry_t *reg)
{
    mlg_registry_t  *old;

    pthread_mutex_lock(&reg_lock);
    old = reg_current;
    reg_current = reg;
    if (old != NULL && --old->refs == 0) {
        registry_free(old);
    }
    pthread_mutex_unlock(&reg_lock);
}

static long long
now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
conn_close(conn_t *c)
{
    worker_t  *w = c->w;

    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    mlg_buf_free(&c->target);
    mlg_buf_free(&c->body);
    mlg_buf_free(&c->out);
    free(c);
}

static void
queue_response(conn_t *c, int status, const char *allow, const mlg_buf_t *body,
    int keep_alive)
{
    mlg_buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n%s%s%s%s\r\n", status,
                   mlg_status_text(status), body->len,
                   allow != NULL ? "Allow: " : "", allow != NULL ? allow : "",
                   allow != NULL ? "\r\n" : "",
                   keep_alive ? "" : "Connection: close\r\n");
    mlg_buf_add(&c->out, body->data, body->len);
    if (!keep_alive) {
        c->closing = 1;
    }
}

/* An error answered before the request is complete; the connection closes. */
static void
reject(conn_t *c, int status, const char *fmt, ...)
{
    worker_t  *w = c->w;
    char       msg[300];
    va_list    ap;

    if (c->rejected) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mlg_error(&w->resp, status, "%s", msg);
    queue_response(c, status, NULL, &w->resp.body, 0);
    c->rejected = 1;
}

static int
on_message_begin(http_parser *p)
{
    conn_t  *c = p->data;

    c->in_message = 1;
    c->request_start = now_ms();
    c->expect_continue = 0;
    c->header_state = 0;
    c->hname_len = 0;
    mlg_buf_reset(&c->target);
    mlg_buf_reset(&c->body);
    return 0;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
    conn_t  *c = p->data;

    if (c->target.len + len > MAX_TARGET) {
        reject(c, 414, "request target longer than %d bytes", MAX_TARGET);
        return 1;
    }
    mlg_buf_add(&c->target, at, len);
    return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
    conn_t  *c = p->data;

    if (c->header_state != 2) {       /* a new field (not a split one) */
        c->hname_len = 0;
    }
    if (c->hname_len + len < sizeof(c->hname)) {
        memcpy(c->hname + c->hname_len, at, len);
        c->hname_len += len;
    } else {
        c->hname_len = sizeof(c->hname);   /* too long to be Expect */
    }
    c->header_state = 2;
    return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
    conn_t  *c = p->data;

    if (c->header_state == 2 && c->hname_len == 6
        && strncasecmp(c->hname, "expect", 6) == 0)
    {
        if (len >= 12 && strncasecmp(at, "100-continue", 12) == 0) {
            c->expect_continue = 1;
        }
    }
    c->header_state = 3;
    return 0;
}

static int
on_headers_complete(http_parser *p)
{
    conn_t                   *c = p->data;
    const mlg_server_conf_t  *conf = c->w->conf;

    if ((p->flags & F_CONTENTLENGTH)
        && p->content_length > conf->max_body)
    {
        reject(c, 413, "request body of %llu bytes exceeds the limit of %zu",
               (unsigned long long) p->content_length, conf->max_body);
        return -1;
    }
    if (c->expect_continue && (p->flags & (F_CONTENTLENGTH | F_CHUNKED))) {
        mlg_buf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    }
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
    conn_t  *c = p->data;

    if (c->body.len + len > c->w->conf->max_body) {
        reject(c, 413, "request body exceeds the limit of %zu bytes",
               c->w->conf->max_body);
        return 1;
    }
    mlg_buf_add(&c->body, at, len);
    return 0;
}

static int
on_message_complete(http_parser *p)
{
    conn_t          *c = p->data;
    worker_t        *w = c->w;
    mlg_registry_t  *reg;
    int              method, keep_alive;

    c->in_message = 0;
    c->request_start = 0;
    if (c->target.oom || c->body.oom) {
        reject(c, 500, "out of memory");
        return 1;
    }
    if (c->body.data == NULL) {
        mlg_buf_reserve(&c->body, 0);
        if (c->body.data != NULL) {
            c->body.data[0] = '\0';
        }
    }
    method = p->method == HTTP_GET ? MLG_GET
             : p->method == HTTP_POST ? MLG_POST : MLG_OTHER;
    keep_alive = http_should_keep_alive(p);

    reg = mlg_registry_acquire();
    mlg_handle(reg, &w->scratch, method, c->target.data ? c->target.data : "/",
               c->target.len, c->body.data ? c->body.data : "", c->body.len,
               &w->resp);
    mlg_registry_release(reg);

    if (w->resp.body.oom) {
        mlg_error(&w->resp, 500, "out of memory");
    }
    queue_response(c, w->resp.status, w->resp.allow, &w->resp.body, keep_alive);
    /* free big per-request buffers; small ones are kept for the next one */
    if (c->body.cap > 1 << 20) {
        mlg_buf_free(&c->body);
    }
    return keep_alive ? 0 : 1;
}

static const http_parser_settings  parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void
update_events(conn_t *c)
{
    struct epoll_event  ev;
    size_t              pending = c->out.len - c->out_off;
    uint32_t            mask = 0;

    if (pending > 0) {
        mask |= EPOLLOUT;
    }
    /* stop reading from a client that does not read its responses */
    if (!c->closing && pending <= OUT_HIGH_WATER) {
        mask |= EPOLLIN | EPOLLRDHUP;
    }
    if (mask == c->events) {
        return;
    }
    ev.events = mask;
    ev.data.ptr = c;
    epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = mask;
}

/* After a failed send/recv: 1 = retry, 0 = wait for epoll, -1 = broken. */
static int
io_retry(void)
{
    if (errno == EINTR) {
        return 1;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
}

/* Sends what is queued; returns -1 when the connection was closed. */
static int
flush(conn_t *c)
{
    ssize_t  n;
    int      k;

    while (c->out_off < c->out.len) {
        n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                 MSG_NOSIGNAL);
        if (n < 0 && (k = io_retry()) >= 0) {
            if (k > 0) {
                continue;
            }
            break;
        }
        if (n < 0) {
            conn_close(c);
            return -1;
        }
        c->out_off += (size_t) n;
        c->last_active = now_ms();
    }
    if (c->out_off == c->out.len) {
        mlg_buf_reset(&c->out);
        c->out_off = 0;
        if (c->out.cap > 1 << 20) {
            mlg_buf_free(&c->out);
        }
        if (c->closing) {
            conn_close(c);
            return -1;
        }
    }
    update_events(c);
    return 0;
}

static void
conn_read(conn_t *c)
{
    worker_t  *w = c->w;
    ssize_t    n;
    size_t     parsed;
    int        k;

    for ( ;; ) {
        if (c->closing || c->out.len - c->out_off > OUT_HIGH_WATER) {
            break;
        }
        n = recv(c->fd, w->readbuf, READ_CHUNK, 0);
        if (n < 0) {
            k = io_retry();
            if (k < 0) {
                conn_close(c);
                return;
            }
            if (k > 0) {
                continue;
            }
            break;
        }
        if (n == 0) {
            if (c->in_message) {
                http_parser_execute(&c->parser, &parser_settings, NULL, 0);
            }
            /* peer finished sending: answer what is queued, then close */
            c->closing = 1;
            break;
        }
        c->last_active = now_ms();
        parsed = http_parser_execute(&c->parser, &parser_settings, w->readbuf,
                                     (size_t) n);
        if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
            if (!c->rejected) {
                enum http_errno  e = HTTP_PARSER_ERRNO(&c->parser);

                if (e == HPE_HEADER_OVERFLOW) {
                    reject(c, 431, "request headers too large");
                } else if (e != HPE_CB_message_complete) {
                    reject(c, 400, "malformed HTTP request: %s",
                           http_errno_description(e));
                }
            }
            c->closing = 1;
            break;
        }
        (void) parsed;
        if (c->parser.upgrade) {
            reject(c, 400, "protocol upgrades are not supported");
            c->closing = 1;
            break;
        }
    }
    if (c->out.oom) {
        conn_close(c);
        return;
    }
    flush(c);
}

/* Markers for the non-connection fds in the epoll set. */
static char  stop_marker;
static char  listen_markers[8];

static int
listeners_ctl(worker_t *w, int op)
{
    struct epoll_event  ev;
    int                 k;

    for (k = 0; k < n_listen_fds; k++) {
        ev.events = EPOLLIN | EPOLLEXCLUSIVE;
        ev.data.ptr = &listen_markers[k];
        if (epoll_ctl(w->epfd, op, listen_fd_list[k], &ev) != 0) {
            return -1;
        }
    }
    return 0;
}

static void
accept_all(worker_t *w, int lfd)
{
    struct epoll_event  ev;
    conn_t             *c;
    int                 fd;

    for ( ;; ) {
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE) {
                /* level-triggered listeners would wake us in a loop: stop
                 * accepting until the next timeout sweep */
                mlg_log("accept: %s; pausing accepts", strerror(errno));
                listeners_ctl(w, EPOLL_CTL_DEL);
                w->accept_paused = 1;
            }
            return;
        }
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->w = w;
        c->last_active = now_ms();
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = c;
        c->events = ev.events;
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = w->conns;
        if (w->conns != NULL) {
            w->conns->prev = c;
        }
        w->conns = c;
    }
}

static void
sweep_timeouts(worker_t *w)
{
    long long  now = now_ms();
    conn_t    *c, *next;

    for (c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (c->out.len > c->out_off) {
            /* a client that does not read its responses */
            if (now - c->last_active > w->conf->request_timeout_ms) {
                conn_close(c);
            }
            continue;
        }
        if (c->in_message) {
            if (now - c->request_start > w->conf->request_timeout_ms) {
                reject(c, 408, "request not received within %ld ms",
                       w->conf->request_timeout_ms);
                flush(c);
            }
        } else if (now - c->last_active > w->conf->idle_timeout_ms) {
            conn_close(c);
        }
    }
}

static void *
worker_main(void *arg)
{
    worker_t            *w = arg;
    struct epoll_event   evs[64];
    long long            next_sweep = 0;
    long                 tick;
    int                  n, i, k;
    conn_t              *c;

    tick = w->conf->request_timeout_ms < w->conf->idle_timeout_ms
           ? w->conf->request_timeout_ms : w->conf->idle_timeout_ms;
    tick = tick / 4 > 1000 ? 1000 : (tick / 4 < 10 ? 10 : tick / 4);

    for ( ;; ) {
        n = epoll_wait(w->epfd, evs, 64, (int) tick);
        if (n < 0 && errno != EINTR) {
            mlg_log("epoll_wait: %s", strerror(errno));
            break;
        }
        for (i = 0; i < n; i++) {
            if (evs[i].data.ptr == &stop_marker) {
                goto done;
            }
            if ((char *) evs[i].data.ptr >= listen_markers
                && (char *) evs[i].data.ptr < listen_markers + 8)
            {
                k = (int) ((char *) evs[i].data.ptr - listen_markers);
                accept_all(w, listen_fd_list[k]);
                continue;
            }
            c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT) {
                if (flush(c) != 0) {
                    continue;
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                if (evs[i].events & EPOLLERR) {
                    conn_close(c);
                    continue;
                }
                conn_read(c);
            }
        }
        if (now_ms() >= next_sweep) {
            sweep_timeouts(w);
            if (w->accept_paused && listeners_ctl(w, EPOLL_CTL_ADD) == 0) {
                w->accept_paused = 0;
            }
            next_sweep = now_ms() + tick;
        }
    }

done:
    while (w->conns != NULL) {
        c = w->conns;
        /* answers already computed go out if the socket takes them now */
        if (c->out.len > c->out_off) {
            (void) send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        conn_close(c);
    }
    return NULL;
}

int
mlg_server_start(const mlg_server_conf_t *conf, const int *listen_fds,
    int n_listen)
{
    struct epoll_event  ev;
    worker_t           *w;
    int                 i, k;

    if (n_listen > 8) {
        return -1;
    }
    for (k = 0; k < n_listen; k++) {
        listen_fd_list[k] = listen_fds[k];
    }
    n_listen_fds = n_listen;
    stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd < 0) {
        return -1;
    }
    workers = calloc((size_t) conf->threads, sizeof(worker_t));
    if (workers == NULL) {
        return -1;
    }
    for (i = 0; i < conf->threads; i++) {
        w = &workers[i];
        w->conf = conf;
        w->readbuf = malloc(READ_CHUNK);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (w->epfd < 0 || w->readbuf == NULL) {
            return -1;
        }
        ev.events = EPOLLIN;
        ev.data.ptr = &stop_marker;
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, stop_fd, &ev) != 0) {
            return -1;
        }
        if (listeners_ctl(w, EPOLL_CTL_ADD) != 0) {
            return -1;
        }
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
            return -1;
        }
        n_workers++;
    }
    return 0;
}

void
mlg_server_stop(void)
{
    uint64_t  one = 1;
    int       i;

    if (stop_fd >= 0) {
        (void) !write(stop_fd, &one, sizeof(one));
    }
    for (i = 0; i < n_workers; i++) {
        pthread_join(workers[i].tid, NULL);
        close(workers[i].epfd);
        free(workers[i].readbuf);
        mlg_scratch_free(&workers[i].scratch);
        mlg_buf_free(&workers[i].resp.body);
    }
    free(workers);
    workers = NULL;
    n_workers = 0;
}
