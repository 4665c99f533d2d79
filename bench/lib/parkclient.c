/* parkclient: N concurrent HTTP requests, one per connection, all opened at
 * once; waits until every one has been answered (or a deadline passes).
 *
 * Used by bench/run.sh for "N concurrent requests that each wait 1 s": it
 * measures the wall time from the first connect() to the last complete
 * response, and samples the server's RSS (the sum over the given pids,
 * /proc/PID/statm) while the requests are parked.
 *
 *   parkclient -p PORT -u '/sleep?ms=1000' -n 10000 [-a 127.0.0.1]
 *              [-d DEADLINE_S] [-r PID,PID,...] [-i SAMPLE_MS]
 *
 * One event loop (epoll), non-blocking sockets, no threads: it scales to
 * the process' file descriptor limit (raised to the hard limit). Every
 * wait is bounded by the deadline (default 120 s).
 *
 * Output: key=value lines (seconds, KiB), e.g. "wall_s=1.0132".
 * A request counts as ok when a complete response (status line, headers,
 * Content-Length body or body up to EOF) with a 2xx status arrived.
 * Exit status: 0 all answered 2xx, 1 some failed or were unanswered,
 * 2 usage or setup error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_MAX 4096
#define MAX_PIDS 256

enum { ST_CONNECTING, ST_SENDING, ST_READING, ST_DONE, ST_FAILED };

typedef struct {
    int fd;
    int state;
    int status;          /* HTTP status, 0 until the status line arrived */
    size_t sent;
    size_t len;
    double t_start, t_done;
    char *buf;
} conn_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int npids;
static int pids[MAX_PIDS];
static long page_kb;

/* Sum of resident KiB over the pids; processes that are gone count 0. */
static long rss_kb(void)
{
    long total = 0;
    for (int i = 0; i < npids; i++) {
        char path[64];
        long size, res;
        FILE *f;
        snprintf(path, sizeof path, "/proc/%d/statm", pids[i]);
        if ((f = fopen(path, "r")) == NULL) {
            continue;
        }
        if (fscanf(f, "%ld %ld", &size, &res) == 2) {
            total += res * page_kb;
        }
        fclose(f);
    }
    return total;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Is buf[0..len) a complete response? Sets *status. Returns 1 complete,
 * 0 need more, -1 malformed. eof: the peer closed. */
static int response_complete(const char *buf, size_t len, int eof,
                             int *status)
{
    const char *hend = memmem(buf, len, "\r\n\r\n", 4);
    const char *p;
    long clen = -1;

    if (len >= 12) {
        if (strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ') {
            return -1;
        }
        *status = atoi(buf + 9);
    }
    if (hend == NULL) {
        return eof ? -1 : 0;
    }
    for (p = buf; p < hend; ) {
        const char *eol = memmem(p, (size_t)(hend - p) + 2, "\r\n", 2);
        if (eol == NULL) {
            break;
        }
        if (eol - p > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
            clen = strtol(p + 15, NULL, 10);
        }
        p = eol + 2;
    }
    if (clen >= 0) {
        return (size_t)(hend + 4 - buf) + (size_t)clen <= len ? 1 : (eof ? -1 : 0);
    }
    return eof ? 1 : 0;      /* no length: the body ends at EOF */
}

static void usage(void)
{
    fprintf(stderr, "usage: parkclient -p PORT -u PATH -n N [-a ADDR] "
                    "[-d DEADLINE_S] [-r PID,...] [-i SAMPLE_MS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *path = NULL;
    int port = 0, n = 0, opt;
    double deadline_s = 120, sample_ms = 20;
    struct sockaddr_in sa;
    struct rlimit rl;
    char req[1024];
    size_t reqlen;
    conn_t *c;
    int ep, open_conns = 0, left;
    int n_ok = 0, n_non2xx = 0, n_connect = 0, n_read = 0, n_timeout = 0;
    double t0, t_last = 0, t_first_done = 0, t_all_sent = 0, next_sample;
    long rss_idle, rss_peak, rss;
    int sent_count = 0;
    struct epoll_event evs[1024];

    while ((opt = getopt(argc, argv, "a:p:u:n:d:r:i:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'u': path = optarg; break;
        case 'n': n = atoi(optarg); break;
        case 'd': deadline_s = atof(optarg); break;
        case 'i': sample_ms = atof(optarg); break;
        case 'r': {
            char *s = strdup(optarg), *tok, *st = NULL;
            for (tok = strtok_r(s, ",", &st); tok && npids < MAX_PIDS;
                 tok = strtok_r(NULL, ",", &st)) {
                pids[npids++] = atoi(tok);
            }
            free(s);
            break;
        }
        default: usage();
        }
    }
    if (port <= 0 || port > 65535 || path == NULL || n <= 0
        || deadline_s <= 0 || sample_ms <= 0) {
        usage();
    }
    page_kb = sysconf(_SC_PAGESIZE) / 1024;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 16) {
        fprintf(stderr, "parkclient: %d connections need more file "
                "descriptors than the limit (%lu): raise ulimit -n\n", n,
                (unsigned long)rl.rlim_cur);
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "parkclient: bad IPv4 address %s\n", addr);
        return 2;
    }
    reqlen = (size_t)snprintf(req, sizeof req,
                              "GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
                              "User-Agent: parkclient\r\n"
                              "Connection: close\r\n\r\n", path, addr, port);
    if (reqlen >= sizeof req) {
        fprintf(stderr, "parkclient: path too long\n");
        return 2;
    }
    c = calloc((size_t)n, sizeof *c);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (c == NULL || ep < 0) {
        perror("parkclient: setup");
        return 2;
    }

    /* Idle RSS: the median of 5 samples 20 ms apart. */
    {
        long s[5];
        for (int i = 0; i < 5; i++) {
            s[i] = rss_kb();
            usleep(20000);
        }
        for (int i = 0; i < 5; i++)
            for (int j = i + 1; j < 5; j++)
                if (s[j] < s[i]) { long t = s[i]; s[i] = s[j]; s[j] = t; }
        rss_idle = s[2];
    }
    rss_peak = rss_idle;

    t0 = now_s();
    next_sample = t0;
    for (int i = 0; i < n; i++) {
        struct epoll_event ev;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        0), one = 1;
        c[i].t_start = now_s();
        c[i].fd = fd;
        if (fd < 0) {
            c[i].state = ST_FAILED;
            n_connect++;
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0
            && errno != EINPROGRESS) {
            close(fd);
            c[i].fd = -1;
            c[i].state = ST_FAILED;
            n_connect++;
            continue;
        }
        c[i].state = ST_CONNECTING;
        ev.events = EPOLLOUT | EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            c[i].fd = -1;
            c[i].state = ST_FAILED;
            n_connect++;
            continue;
        }
        open_conns++;
    }

    left = open_conns;
    while (left > 0) {
        double t = now_s();
        int nev, timeout_ms;

        if (t >= next_sample) {
            rss = rss_kb();
            if (rss > rss_peak) {
                rss_peak = rss;
            }
            next_sample = t + sample_ms / 1000.0;
        }
        if (t - t0 >= deadline_s) {
            break;
        }
        timeout_ms = (int)((next_sample - t) * 1000.0) + 1;
        if (timeout_ms < 1) {
            timeout_ms = 1;
        }
        nev = epoll_wait(ep, evs, 1024, timeout_ms);
        if (nev < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("parkclient: epoll_wait");
            break;
        }
        for (int k = 0; k < nev; k++) {
            conn_t *x = &c[evs[k].data.u32];
            uint32_t e = evs[k].events;
            int fail = 0;

            if (x->state == ST_CONNECTING && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0) {
                    n_connect++;
                    fail = 1;
                }
                else {
                    x->state = ST_SENDING;
                }
            }
            if (!fail && x->state == ST_SENDING) {
                ssize_t w = send(x->fd, req + x->sent, reqlen - x->sent,
                                 MSG_NOSIGNAL);
                if (w > 0) {
                    x->sent += (size_t)w;
                }
                else if (w < 0 && errno != EAGAIN) {
                    n_connect++;
                    fail = 1;
                }
                if (!fail && x->sent == reqlen) {
                    struct epoll_event ev;
                    ev.events = EPOLLIN;
                    ev.data.u32 = evs[k].data.u32;
                    epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &ev);
                    x->state = ST_READING;
                    x->buf = malloc(BUF_MAX);
                    if (++sent_count == open_conns) {
                        t_all_sent = now_s();
                    }
                    if (x->buf == NULL) {
                        n_read++;
                        fail = 1;
                    }
                }
            }
            if (!fail && x->state == ST_READING && (e & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
                for (;;) {
                    ssize_t r = recv(x->fd, x->buf + x->len,
                                     BUF_MAX - 1 - x->len, 0);
                    int done;
                    if (r < 0 && errno == EAGAIN) {
                        break;
                    }
                    if (r < 0) {
                        n_read++;
                        fail = 1;
                        break;
                    }
                    x->len += (size_t)r;
                    done = response_complete(x->buf, x->len, r == 0,
                                             &x->status);
                    if (done == 1) {
                        x->t_done = now_s();
                        if (t_first_done == 0) {
                            t_first_done = x->t_done;
                        }
                        t_last = x->t_done;
                        x->state = ST_DONE;
                        if (x->status >= 200 && x->status < 300) {
                            n_ok++;
                        }
                        else {
                            n_non2xx++;
                        }
                        break;
                    }
                    if (done < 0 || r == 0 || x->len >= BUF_MAX - 1) {
                        n_read++;
                        fail = 1;
                        break;
                    }
                }
            }
            if (fail) {
                x->state = ST_FAILED;
            }
            if (x->state == ST_DONE || x->state == ST_FAILED) {
                epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
                close(x->fd);
                x->fd = -1;
                free(x->buf);
                x->buf = NULL;
                left--;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (c[i].fd >= 0 && c[i].state != ST_DONE && c[i].state != ST_FAILED) {
            n_timeout++;
            close(c[i].fd);
            free(c[i].buf);
        }
    }

    {
        double *lat = malloc(sizeof(double) * (size_t)n);
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (c[i].state == ST_DONE) {
                lat[m++] = c[i].t_done - c[i].t_start;
            }
        }
        qsort(lat, (size_t)m, sizeof(double), cmp_double);
        printf("n=%d\nok=%d\nnon2xx=%d\nconnect_err=%d\nread_err=%d\n"
               "timeout=%d\n", n, n_ok, n_non2xx, n_connect, n_read,
               n_timeout);
        printf("wall_s=%.4f\n", n_timeout ? -1.0 : (t_last - t0));
        printf("all_sent_s=%.4f\nfirst_answer_s=%.4f\n",
               t_all_sent ? t_all_sent - t0 : -1.0,
               t_first_done ? t_first_done - t0 : -1.0);
        printf("lat_min_s=%.4f\nlat_p50_s=%.4f\nlat_p99_s=%.4f\n"
               "lat_max_s=%.4f\n",
               m ? lat[0] : -1.0, m ? lat[m / 2] : -1.0,
               m ? lat[(int)((m - 1) * 0.99)] : -1.0, m ? lat[m - 1] : -1.0);
        printf("rss_idle_kb=%ld\nrss_peak_kb=%ld\n", rss_idle, rss_peak);
        free(lat);
    }
    return (n_ok == n) ? 0 : 1;
}
