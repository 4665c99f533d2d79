/* Per-fiber OpenSSL error queue: see vt_libstate.h. */
#include "vt_libstate.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

/* OpenSSL 3's public error API, by address (no OpenSSL header: the
 * runtime does not depend on it). */
typedef unsigned long (*err_peek_fn)(void);
typedef unsigned long (*err_get_all_fn)(const char **file, int *line,
                                        const char **func,
                                        const char **data, int *flags);
typedef void (*err_new_fn)(void);
typedef void (*err_set_debug_fn)(const char *file, int line,
                                 const char *func);
typedef void (*err_set_error_fn)(int lib, int reason, const char *fmt, ...);
typedef void (*err_clear_fn)(void);

static struct {
    err_peek_fn peek;
    err_get_all_fn get_all;
    err_new_fn new_error;
    err_set_debug_fn set_debug;
    err_set_error_fn set_error;
    err_clear_fn clear;
} ossl;

/* From openssl/err.h (3.x), stable ABI values. */
#define VT_ERR_TXT_STRING 0x02
#define VT_ERR_SYSTEM_FLAG ((unsigned long)0x80000000UL)
#define VT_ERR_LIB_SYS 2
#define VT_ERR_LIB_OFFSET 23
#define VT_ERR_LIB_MASK 0xFF
#define VT_ERR_REASON_MASK 0x7FFFFF

/* One queued error, as OpenSSL reports it, with its strings copied:
 * ERR_set_debug() copies file and func into the queue, which frees them
 * when it is cleared (by another fiber's ERR_clear_error(), say). */
typedef struct libstate_err_t {
    unsigned long code;
    char *file;             /* copies: OpenSSL 3 owns its own, and frees */
    char *func;             /* them when the queue is cleared */
    char *data;
    int line;
} libstate_err_t;

/* OpenSSL keeps at most 16 per thread (ERR_NUM_ERRORS). */
#define LIBSTATE_MAX 16

typedef struct libstate_t {
    int n;
    libstate_err_t err[LIBSTATE_MAX];
} libstate_t;

int vt_libstate_on;

int vt_libstate_enable(void)
{
    if (vt_libstate_on) {
        return 1;
    }
    ossl.peek = (err_peek_fn)dlsym(RTLD_DEFAULT, "ERR_peek_error");
    ossl.get_all = (err_get_all_fn)dlsym(RTLD_DEFAULT, "ERR_get_error_all");
    ossl.new_error = (err_new_fn)dlsym(RTLD_DEFAULT, "ERR_new");
    ossl.set_debug = (err_set_debug_fn)dlsym(RTLD_DEFAULT, "ERR_set_debug");
    ossl.set_error = (err_set_error_fn)dlsym(RTLD_DEFAULT, "ERR_set_error");
    ossl.clear = (err_clear_fn)dlsym(RTLD_DEFAULT, "ERR_clear_error");
    vt_libstate_on = ossl.peek && ossl.get_all && ossl.new_error
                     && ossl.set_debug && ossl.set_error && ossl.clear;
    return vt_libstate_on;
}

static void libstate_drop(libstate_t *ls)
{
    for (int i = 0; i < ls->n; i++) {
        free(ls->err[i].file);
        free(ls->err[i].func);
        free(ls->err[i].data);
    }
    ls->n = 0;
}

static char *libstate_copy(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

void vt_libstate_save(void **slot)
{
    libstate_t *ls = *slot;
    const char *file, *func, *data;
    int line, flags;
    unsigned long code;

    if (ossl.peek() == 0) {
        return;     /* the common case: nothing queued */
    }
    if (!ls) {
        ls = *slot = calloc(1, sizeof(*ls));
        if (!ls) {
            ossl.clear();   /* better lost than another fiber's */
            return;
        }
    }
    libstate_drop(ls);
    while ((code = ossl.get_all(&file, &line, &func, &data, &flags)) != 0) {
        libstate_err_t *e;
        if (ls->n == LIBSTATE_MAX) {
            continue;       /* drain: the thread's queue ends empty */
        }
        e = &ls->err[ls->n++];
        e->code = code;
        e->file = libstate_copy(file);
        e->line = line;
        e->func = libstate_copy(func);
        e->data = (flags & VT_ERR_TXT_STRING) ? libstate_copy(data) : NULL;
    }
}

void vt_libstate_restore(void **slot)
{
    libstate_t *ls = *slot;

    if (!ls || ls->n == 0) {
        return;
    }
    for (int i = 0; i < ls->n; i++) {
        libstate_err_t *e = &ls->err[i];
        int lib, reason;
        if (e->code & VT_ERR_SYSTEM_FLAG) {
            lib = VT_ERR_LIB_SYS;
            reason = (int)(e->code & ~VT_ERR_SYSTEM_FLAG);
        }
        else {
            lib = (int)((e->code >> VT_ERR_LIB_OFFSET) & VT_ERR_LIB_MASK);
            reason = (int)(e->code & VT_ERR_REASON_MASK);
        }
        ossl.new_error();
        ossl.set_debug(e->file, e->line, e->func);
        if (e->data) {
            ossl.set_error(lib, reason, "%s", e->data);
        }
        else {
            ossl.set_error(lib, reason, NULL);
        }
    }
    libstate_drop(ls);
}

void vt_libstate_end(void **slot)
{
    libstate_t *ls = *slot;

    if (ossl.peek && ossl.peek() != 0) {
        ossl.clear();
    }
    if (ls) {
        libstate_drop(ls);
        free(ls);
        *slot = NULL;
    }
}
