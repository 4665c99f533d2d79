/* Stack overflow reporting: see vt_guard.h. Only async-signal-safe calls
 * in the handler: write(2), sigaction(2), no stdio, no malloc. */
#include "vt_guard.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define VT_ALTSTACK_SIZE (64 * 1024)

static struct sigaction previous;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static _Thread_local void *tls_altstack;
/* The calling carrier's index and where it publishes its running stack.
 * initial-exec: the signal handler reads them, and a global-dynamic read
 * in mod_vthread.so may call __tls_get_addr, which is not
 * async-signal-safe. */
static _Thread_local int tls_carrier_index
    __attribute__((tls_model("initial-exec")));
static _Thread_local _Atomic(vt_stack_t *) *tls_running
    __attribute__((tls_model("initial-exec")));

/* Tiny async-signal-safe formatting into a fixed buffer. */
typedef struct {
    char buf[512];
    size_t len;
} report_t;

static void put_str(report_t *r, const char *s)
{
    while (*s && r->len < sizeof(r->buf) - 1) {
        r->buf[r->len++] = *s++;
    }
}

static void put_num(report_t *r, uintptr_t v, unsigned base)
{
    char tmp[32];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v && n < (int)sizeof(tmp));
    if (base == 16) {
        put_str(r, "0x");
    }
    while (n > 0 && r->len < sizeof(r->buf) - 1) {
        r->buf[r->len++] = tmp[--n];
    }
}

static void report_overflow(int carrier_index, const vt_stack_t *st,
                            const void *addr)
{
    report_t r = { .len = 0 };
    put_str(&r, "mod_vthread: FATAL: fiber stack overflow: fiber ");
    put_num(&r, (uintptr_t)st->fiber_id, 10);
    put_str(&r, " '");
    put_str(&r, st->label);
    put_str(&r, "' on carrier ");
    put_num(&r, (uintptr_t)carrier_index, 10);
    put_str(&r, " ran past its ");
    put_num(&r, (uintptr_t)((st->hi - st->lo) / 1024), 10);
    put_str(&r, " KiB stack (fault at ");
    put_num(&r, (uintptr_t)addr, 16);
    put_str(&r, " in guard page ");
    put_num(&r, (uintptr_t)st->base, 16);
    put_str(&r, "-");
    put_num(&r, (uintptr_t)st->lo, 16);
    put_str(&r, "); raise VThreadStackSize. The process dies now.\n");
    ssize_t n = write(STDERR_FILENO, r.buf, r.len);
    (void)n;
}

static void on_segv(int sig, siginfo_t *info, void *uctx)
{
    _Atomic(vt_stack_t *) *running = tls_running;
    vt_stack_t *st = running ? atomic_load_explicit(running,
                                                    memory_order_relaxed)
                             : NULL;
    (void)sig;
    (void)uctx;
    if (st && vt_stack_in_guard(st, info->si_addr)) {
        report_overflow(tls_carrier_index, st, info->si_addr);
    }
    /* Put back what was there and return: the faulting instruction runs
     * again and meets the previous disposition, as if we were never
     * installed. */
    sigaction(SIGSEGV, &previous, NULL);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous);
}

void vt_guard_install(void)
{
    pthread_once(&install_once, install);
}

void vt_guard_thread_enter(int carrier_index,
                           _Atomic(vt_stack_t *) *running_stack)
{
    stack_t ss;
    tls_carrier_index = carrier_index;
    tls_running = running_stack;
    void *mem = mmap(NULL, VT_ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        return; /* overflow then dies unreported, as without us */
    }
    ss.ss_sp = mem;
    ss.ss_size = VT_ALTSTACK_SIZE;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, VT_ALTSTACK_SIZE);
        return;
    }
    tls_altstack = mem;
}

void vt_guard_thread_leave(void)
{
    /* Static, not on this stack: after the last fiber switch ASan may
     * still see this thread's stack through a stale annotation and report
     * a stack object here as out of bounds. */
    static const stack_t disable = { .ss_flags = SS_DISABLE };
    tls_running = NULL;
    if (!tls_altstack) {
        return;
    }
    sigaltstack(&disable, NULL);
    munmap(tls_altstack, VT_ALTSTACK_SIZE);
    tls_altstack = NULL;
}
