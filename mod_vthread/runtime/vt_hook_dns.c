/* Transparent hook for getaddrinfo: glibc's DNS and netlink I/O happen
 * inside libc, where no GOT slot reaches, so the whole call moves to the
 * blocking pool (vt_blockpool.h) while the fiber parks. A saturated pool
 * makes the call on the carrier, reported as a pin. */
#include "vt_hook.h"
#include "vt_hook_calls.h"

#include "vt_blockpool.h"

typedef struct hook_gai_t {
    const char *node;
    const char *service;
    const struct addrinfo *hints;
    struct addrinfo **res;
    int rv;
    int err;
} hook_gai_t;

static void hook_gai_call(void *arg)
{
    hook_gai_t *g = arg;
    g->rv = vt_hook_real.getaddrinfo(g->node, g->service, g->hints, g->res);
    g->err = errno;
}

int vt_hook_getaddrinfo(const char *node, const char *service,
                        const struct addrinfo *hints, struct addrinfo **res)
{
    vt_fiber_t *f = vt_hook_fiber();
    hook_gai_t g = { node, service, hints, res, 0, 0 };

    if (!f) {
        return vt_hook_real.getaddrinfo(node, service, hints, res);
    }
    /* A numeric host needs no lookup: no reason to leave the carrier. */
    if (hints && (hints->ai_flags & AI_NUMERICHOST)) {
        vt_hook_count(f, VT_HOOK_GETADDRINFO, 0);
        return vt_hook_real.getaddrinfo(node, service, hints, res);
    }
    if (vt_blockpool_run(hook_gai_call, &g) != APR_SUCCESS) {
        vt_hook_pinned(f, VT_HOOK_GETADDRINFO, __builtin_return_address(0),
                       "the blocking pool is saturated");
        vt_hook_count(f, VT_HOOK_GETADDRINFO, 0);
        return vt_hook_real.getaddrinfo(node, service, hints, res);
    }
    vt_hook_count(f, VT_HOOK_GETADDRINFO, 1);
    /* EAI_SYSTEM leaves its cause in errno. */
    return (int)vt_hook_return(g.rv, g.err);
}
