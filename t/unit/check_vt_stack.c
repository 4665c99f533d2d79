/* Unit tests for vt_stack.c: size rounding, mapping layout, the guard page,
 * LIFO reuse, the hot watermark, destroy. The fault on touching the guard
 * page is tested in check_vt_guard.c (it crashes a child on purpose).
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) maps fewer
 * stacks. */
#include "vt_test_util.h"
#include "vt_stack.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The protection string ("rw-p", "---p") of the /proc/self/maps entry that
 * contains [lo, hi), or "" if no entry does. */
static void map_perms(const void *lo, const void *hi, char perms[8])
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    uintptr_t a = (uintptr_t)lo, b = (uintptr_t)hi;
    perms[0] = '\0';
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f)) {
        unsigned long s, e;
        char p[8];
        if (sscanf(line, "%lx-%lx %7s", &s, &e, p) == 3 && s <= a && b <= e) {
            memcpy(perms, p, 8);
            break;
        }
    }
    fclose(f);
}

/* Is any byte of [p, p+len) mapped? (mincore fails with ENOMEM if not.) */
static int is_mapped(void *p, apr_size_t len)
{
    unsigned char vec[64];
    ck_assert_uint_le(len / vt_stack_page_size(), sizeof(vec));
    return !(mincore(p, len, vec) != 0 && errno == ENOMEM);
}

START_TEST(test_page_size)
{
    apr_size_t pg = vt_stack_page_size();
    ck_assert_uint_ge(pg, 4096);
    ck_assert_uint_eq(pg & (pg - 1), 0);
    ck_assert_uint_eq(vt_stack_page_size(), pg);
}
END_TEST

START_TEST(test_size_round)
{
    apr_size_t pg = vt_stack_page_size(), out = 0;
    ck_assert_int_eq(vt_stack_size_round(0, &out), APR_EINVAL);
    ck_assert_int_eq(vt_stack_size_round(VT_STACK_MIN_SIZE - 1, &out),
                     APR_EINVAL);
    ck_assert_int_eq(vt_stack_size_round(VT_STACK_MAX_SIZE + 1, &out),
                     APR_EINVAL);
    ck_assert_int_eq(vt_stack_size_round((apr_size_t)-1, &out), APR_EINVAL);

    ck_assert_int_eq(vt_stack_size_round(VT_STACK_MIN_SIZE, &out),
                     APR_SUCCESS);
    ck_assert_uint_eq(out, VT_STACK_MIN_SIZE);
    ck_assert_int_eq(vt_stack_size_round(VT_STACK_MAX_SIZE, &out),
                     APR_SUCCESS);
    ck_assert_uint_eq(out, VT_STACK_MAX_SIZE);
    ck_assert_int_eq(vt_stack_size_round(VT_STACK_MIN_SIZE + 1, &out),
                     APR_SUCCESS);
    ck_assert_uint_eq(out, VT_STACK_MIN_SIZE + pg);
    ck_assert_int_eq(vt_stack_size_round(100000, &out), APR_SUCCESS);
    ck_assert_uint_eq(out % pg, 0);
    ck_assert_uint_ge(out, 100000);
    ck_assert_uint_lt(out, 100000 + pg);
}
END_TEST

START_TEST(test_layout)
{
    vt_stack_cache_t sc;
    vt_stack_t *st = NULL;
    apr_size_t pg = vt_stack_page_size();
    char perms[8];

    vt_stack_cache_init(&sc, 64 * 1024, 2);
    ck_assert_uint_eq(sc.size, 64 * 1024);
    ck_assert_uint_ge(sc.guard, pg);
    ck_assert_uint_eq(sc.nall, 0);
    ck_assert_uint_eq(sc.nfree, 0);
    ck_assert_uint_eq(vt_stack_cache_hot_bytes(&sc), 0);

    ck_assert_int_eq(vt_stack_get(&sc, &st), APR_SUCCESS);
    ck_assert_ptr_nonnull(st);
    ck_assert_uint_eq(sc.nall, 1);
    ck_assert_uint_eq(sc.nfree, 0);
    /* guard below, usable range above it, the struct at the very top
     * (no page of its own) */
    ck_assert_ptr_eq(st->lo, st->base + sc.guard);
    ck_assert_uint_le((apr_size_t)(st->hi - st->lo), sc.size - sizeof(*st));
    ck_assert_uint_ge((apr_size_t)(st->hi - st->lo),
                      sc.size - sizeof(*st) - 64);
    ck_assert_uint_eq(st->mapped, sc.guard + sc.size);
    ck_assert((char *)st >= st->hi);
    ck_assert((char *)(st + 1) <= st->base + st->mapped);
    ck_assert_uint_eq((uintptr_t)st->base % pg, 0);
    ck_assert_uint_eq((uintptr_t)st->hi % 16, 0);

    /* the whole usable range is writable and the guard is PROT_NONE */
    memset(st->lo, 0xa5, (size_t)(st->hi - st->lo));
    ck_assert_int_eq((unsigned char)st->lo[0], 0xa5);
    ck_assert_int_eq((unsigned char)st->hi[-1], 0xa5);
    map_perms(st->base, st->lo, perms);
    ck_assert_str_eq(perms, "---p");
    map_perms(st->lo, st->hi, perms);
    ck_assert_msg(perms[0] == 'r' && perms[1] == 'w',
                  "usable range is %s", perms);

    ck_assert(vt_stack_in_guard(st, st->base));
    ck_assert(vt_stack_in_guard(st, st->lo - 1));
    ck_assert(!vt_stack_in_guard(st, st->lo));
    ck_assert(!vt_stack_in_guard(st, st->hi - 1));
    ck_assert(!vt_stack_in_guard(st, st->base - 1));
    ck_assert(!vt_stack_in_guard(st, NULL));

    /* the label field has room for a whole runtime label */
    ck_assert_uint_ge(sizeof(st->label), VT_FIBER_LABEL_MAX);

    vt_stack_put(&sc, st);
    ck_assert_uint_eq(sc.nfree, 1);
    vt_stack_cache_destroy(&sc);
}
END_TEST

START_TEST(test_reuse_lifo)
{
    vt_stack_cache_t sc;
    vt_stack_t *a, *b, *c, *d;
    vt_stack_cache_init(&sc, VT_STACK_MIN_SIZE, 4);
    ck_assert_int_eq(vt_stack_get(&sc, &a), APR_SUCCESS);
    ck_assert_int_eq(vt_stack_get(&sc, &b), APR_SUCCESS);
    ck_assert_ptr_ne(a, b);
    /* distinct, non-overlapping mappings */
    ck_assert(a->base + a->mapped <= b->base || b->base + b->mapped <= a->base);
    vt_stack_put(&sc, a);
    vt_stack_put(&sc, b);
    ck_assert_uint_eq(sc.nfree, 2);
    ck_assert_int_eq(vt_stack_get(&sc, &c), APR_SUCCESS);
    ck_assert_int_eq(vt_stack_get(&sc, &d), APR_SUCCESS);
    ck_assert_ptr_eq(c, b);     /* most recently released first */
    ck_assert_ptr_eq(d, a);
    ck_assert_uint_eq(sc.nall, 2); /* nothing new mapped */
    ck_assert_uint_eq(sc.nfree, 0);
    vt_stack_put(&sc, c);
    vt_stack_put(&sc, d);
    vt_stack_cache_destroy(&sc);
}
END_TEST

/* The header: a trim gives back the pages of all but the `hot_max` most
 * recently released stacks. */
START_TEST(test_hot_watermark)
{
    enum { N = 4, HOT = 2 };
    vt_stack_cache_t sc;
    vt_stack_t *st[N], *got;
    vt_stack_cache_init(&sc, 64 * 1024, HOT);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(vt_stack_get(&sc, &st[i]), APR_SUCCESS);
        memset(st[i]->lo, 'a' + i, (size_t)(st[i]->hi - st[i]->lo));
    }
    for (int i = 0; i < N; i++) {
        vt_stack_put(&sc, st[i]);
    }
    /* a put keeps pages (no madvise per ended fiber); a trim applies the
     * watermark */
    ck_assert_uint_eq(sc.nhot, N);
    ck_assert_uint_eq(vt_stack_cache_trim(&sc), N - HOT);
    ck_assert_uint_eq(vt_stack_cache_trim(&sc), 0);
    ck_assert_uint_eq(sc.nfree, N);
    ck_assert_uint_eq(sc.nhot, HOT);
    ck_assert_uint_eq(vt_stack_cache_hot_bytes(&sc), HOT * sc.size);
    /* exactly HOT stacks are marked hot, the rest cold */
    {
        int hot = 0;
        for (int i = 0; i < N; i++) {
            hot += st[i]->hot != 0;
        }
        ck_assert_int_eq(hot, HOT);
    }
    /* a cold stack's pages were given back: they read as zero */
    for (int i = 0; i < N; i++) {
        if (!st[i]->hot) {
            ck_assert_int_eq(st[i]->lo[0], 0);
            /* its top page holds the header and is kept */
        }
        else {
            ck_assert_int_eq(st[i]->lo[0], 'a' + i);
        }
    }
    /* the most recently released ones are the hot ones */
    ck_assert_msg(st[N - 1]->hot && st[N - 2]->hot,
                  "most recently released stacks are not the hot ones "
                  "(hot flags: %d %d %d %d)", st[0]->hot, st[1]->hot,
                  st[2]->hot, st[3]->hot);
    /* and a get returns the most recent (hot, contents intact) */
    ck_assert_int_eq(vt_stack_get(&sc, &got), APR_SUCCESS);
    ck_assert_ptr_eq(got, st[N - 1]);
    ck_assert_int_eq(got->lo[0], 'a' + N - 1);
    vt_stack_put(&sc, got);
    vt_stack_cache_destroy(&sc);
}
END_TEST

/* Is [addr, addr + 1 page) mapped? mincore says ENOMEM when it is not
 * (and, unlike msync, valgrind does not check the address itself). */
static int page_mapped(void *addr)
{
    unsigned char vec;
    return mincore(addr, vt_stack_page_size(), &vec) == 0 || errno != ENOMEM;
}

/* A cold stack keeps its header page and its mappings: the oldest cold
 * ones beyond `cold_max` are unmapped, at most as many as asked per call,
 * and the cache goes on working. */
START_TEST(test_cold_unmapped)
{
    enum { N = 10, HOT = 2 };
    vt_stack_cache_t sc;
    vt_stack_t *st[N], *got[N];
    char *base[N];
    vt_stack_cache_init(&sc, 64 * 1024, HOT);
    ck_assert_uint_eq(sc.cold_max, HOT);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(vt_stack_get(&sc, &st[i]), APR_SUCCESS);
        memset(st[i]->lo, 'a' + i, (size_t)(st[i]->hi - st[i]->lo));
        base[i] = st[i]->base;
    }
    for (int i = 0; i < N; i++) {
        vt_stack_put(&sc, st[i]);
    }
    /* nothing is cold before a trim */
    ck_assert_uint_eq(vt_stack_cache_cold_excess(&sc), 0);
    ck_assert_uint_eq(vt_stack_cache_unmap_cold(&sc, 100), 0);
    ck_assert_uint_eq(vt_stack_cache_trim(&sc), N - HOT);
    ck_assert_uint_eq(vt_stack_cache_cold_excess(&sc), N - 2 * HOT);
    /* a limited call, then the rest */
    ck_assert_uint_eq(vt_stack_cache_unmap_cold(&sc, 4), 4);
    ck_assert_uint_eq(vt_stack_cache_unmap_cold(&sc, 100), N - 2 * HOT - 4);
    ck_assert_uint_eq(vt_stack_cache_unmap_cold(&sc, 100), 0);
    ck_assert_uint_eq(sc.nall, 2 * HOT);
    ck_assert_uint_eq(sc.nfree, 2 * HOT);
    ck_assert_uint_eq(sc.nhot, HOT);
    /* the oldest released went: st[0..5] unmapped, guard page and all */
    for (int i = 0; i < N - 2 * HOT; i++) {
        ck_assert_msg(!page_mapped(base[i]) && !page_mapped(
                          base[i] + 64 * 1024),
                      "stack %d is still mapped", i);
    }
    for (int i = N - 2 * HOT; i < N; i++) {
        ck_assert_msg(page_mapped(base[i] + sc.guard),
                      "stack %d was unmapped", i);
    }
    /* gets return the hot (contents intact), then the cold (zeroed),
     * then fresh mappings */
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(vt_stack_get(&sc, &got[i]), APR_SUCCESS);
    }
    ck_assert_ptr_eq(got[0], st[N - 1]);
    ck_assert_int_eq(got[0]->lo[0], 'a' + N - 1);
    ck_assert_ptr_eq(got[1], st[N - 2]);
    ck_assert_ptr_eq(got[2], st[N - 3]);
    ck_assert_int_eq(got[2]->lo[0], 0);
    ck_assert_ptr_eq(got[3], st[N - 4]);
    ck_assert_uint_eq(sc.nall, N);
    for (int i = 0; i < N; i++) {
        memset(got[i]->lo, 'z', 4096);     /* all usable */
        vt_stack_put(&sc, got[i]);
    }
    vt_stack_cache_destroy(&sc);
    ck_assert_uint_eq(sc.nall, 0);
}
END_TEST

START_TEST(test_hot_zero)
{
    vt_stack_cache_t sc;
    vt_stack_t *a, *b;
    vt_stack_cache_init(&sc, VT_STACK_MIN_SIZE, 0);
    ck_assert_int_eq(vt_stack_get(&sc, &a), APR_SUCCESS);
    memset(a->lo, 'x', (size_t)(a->hi - a->lo));
    vt_stack_put(&sc, a);
    ck_assert_uint_eq(vt_stack_cache_trim(&sc), 1);
    ck_assert_uint_eq(sc.nhot, 0);
    ck_assert_uint_eq(vt_stack_cache_hot_bytes(&sc), 0);
    ck_assert_int_eq(a->hot, 0);
    /* still reusable, still writable, pages fresh */
    ck_assert_int_eq(vt_stack_get(&sc, &b), APR_SUCCESS);
    ck_assert_ptr_eq(b, a);
    ck_assert_int_eq(b->lo[0], 0);
    memset(b->lo, 'y', (size_t)(b->hi - b->lo));
    vt_stack_put(&sc, b);
    vt_stack_cache_destroy(&sc);
}
END_TEST

START_TEST(test_destroy_unmaps)
{
    enum { N = 8 };
    vt_stack_cache_t sc;
    vt_stack_t *st[N];
    char *base[N];
    apr_size_t mapped[N];
    vt_stack_cache_init(&sc, VT_STACK_MIN_SIZE, 2);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(vt_stack_get(&sc, &st[i]), APR_SUCCESS);
        base[i] = st[i]->base;
        mapped[i] = st[i]->mapped;
        ck_assert(is_mapped(base[i], mapped[i]));
    }
    for (int i = 0; i < N; i++) {
        vt_stack_put(&sc, st[i]);
        /* released stacks stay mapped (the watchdog may read them) */
        ck_assert(is_mapped(base[i], mapped[i]));
    }
    vt_stack_cache_destroy(&sc);
    ck_assert_uint_eq(sc.nall, 0);
    ck_assert_uint_eq(sc.nfree, 0);
    ck_assert_uint_eq(sc.nhot, 0);
    ck_assert_ptr_null(sc.free);
    ck_assert_ptr_null(sc.all);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(!is_mapped(base[i], mapped[i]), "stack %d still mapped",
                      i);
    }
}
END_TEST

START_TEST(test_many)
{
    const int n = VT_N(2000, 200);
    vt_stack_cache_t sc;
    vt_stack_t **st = calloc((size_t)n, sizeof(*st));
    ck_assert_ptr_nonnull(st);
    vt_stack_cache_init(&sc, VT_STACK_MIN_SIZE, 8);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(vt_stack_get(&sc, &st[i]), APR_SUCCESS);
        st[i]->hi[-1] = (char)i;    /* top byte: what a fiber touches first */
        st[i]->fiber_id = (apr_uint64_t)i;
    }
    ck_assert_uint_eq(sc.nall, (apr_uint32_t)n);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(st[i]->hi[-1], (char)i);
        ck_assert_uint_eq(st[i]->fiber_id, (apr_uint64_t)i);
        vt_stack_put(&sc, st[i]);
    }
    ck_assert_uint_eq(sc.nfree, (apr_uint32_t)n);
    vt_stack_cache_trim(&sc);
    ck_assert_uint_le(sc.nhot, 8);
    /* taking them all again maps nothing new */
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(vt_stack_get(&sc, &st[i]), APR_SUCCESS);
    }
    ck_assert_uint_eq(sc.nall, (apr_uint32_t)n);
    for (int i = 0; i < n; i++) {
        vt_stack_put(&sc, st[i]);
    }
    vt_stack_cache_destroy(&sc);
    free(st);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_stack");
    vt_test_add(s, test_page_size);
    vt_test_add(s, test_size_round);
    vt_test_add(s, test_layout);
    vt_test_add(s, test_reuse_lifo);
    vt_test_add(s, test_hot_watermark);
    vt_test_add(s, test_hot_zero);
    vt_test_add(s, test_cold_unmapped);
    vt_test_add(s, test_destroy_unmaps);
    vt_test_add(s, test_many);
    return vt_test_main(s);
}
