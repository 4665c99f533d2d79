/* GOT slot rewriting for transparent mode: see vt_got.h. */
#include "vt_got.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__)
#define VT_GOT_JUMP_SLOT R_X86_64_JUMP_SLOT
#define VT_GOT_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define VT_GOT_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define VT_GOT_GLOB_DAT R_AARCH64_GLOB_DAT
#endif

/* One slot written, to put it back (vt_got_restore). */
typedef struct got_undo_t {
    void **slot;
    void *before;
    uintptr_t relro_lo;     /* 0 when the slot is not under RELRO */
    uintptr_t relro_hi;
} got_undo_t;

static pthread_mutex_t got_lock = PTHREAD_MUTEX_INITIALIZER;
static got_undo_t *got_undo;
static size_t got_undo_len, got_undo_cap;

int vt_got_supported(void)
{
#ifdef VT_GOT_JUMP_SLOT
    return 1;
#else
    return 0;
#endif
}

#ifdef VT_GOT_JUMP_SLOT

/* What one walk needs per object. */
typedef struct got_object_t {
    uintptr_t base;
    const ElfW(Sym) *symtab;
    const char *strtab;
    const ElfW(Half) *versym;
    const ElfW(Verneed) *verneed;
    size_t verneed_count;
    const ElfW(Rela) *jmprel;
    size_t jmprel_size;
    const ElfW(Rela) *rela;
    size_t rela_size;
    uintptr_t relro_lo, relro_hi;
    int relro_open;         /* RELRO pages made writable by this walk */
} got_object_t;

typedef struct got_walk_t {
    const vt_got_hook_t *hooks;
    size_t n;
    vt_got_filter_fn filter;
    void *baton;
    int collect;            /* only note the versions met (first pass) */
    size_t patched;
    int error;
} got_walk_t;

/* Which symbol versions are libc's default, decided between the two
 * passes of a walk: dlsym/dlvsym take the loader's lock, which must not
 * be taken inside dl_iterate_phdr's callback (a dlopen in another thread
 * takes them in the other order). got_lock guards it. */
#define GOT_VERSIONS 32
typedef struct got_version_t {
    char name[32];
    char version[32];
    int is_default;         /* -1: not decided yet */
} got_version_t;

static got_version_t got_versions[GOT_VERSIONS];
static size_t got_nversions;

static got_version_t *got_version_find(const char *name, const char *v)
{
    for (size_t i = 0; i < got_nversions; i++) {
        if (strcmp(got_versions[i].name, name) == 0
            && strcmp(got_versions[i].version, v) == 0) {
            return &got_versions[i];
        }
    }
    return NULL;
}

static void got_version_note(const char *name, const char *v)
{
    got_version_t *gv;

    if (got_version_find(name, v) || got_nversions == GOT_VERSIONS
        || strlen(name) >= sizeof(gv->name)
        || strlen(v) >= sizeof(gv->version)) {
        return;     /* known, or not kept: such slots are left alone */
    }
    gv = &got_versions[got_nversions++];
    strcpy(gv->name, name);
    strcpy(gv->version, v);
    gv->is_default = -1;
}

/* Decide the versions noted (outside any loader lock). A version libc
 * does not define (the symbol is someone else's) counts as default. */
static void got_versions_decide(void)
{
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);

    for (size_t i = 0; i < got_nversions; i++) {
        got_version_t *gv = &got_versions[i];
        if (gv->is_default < 0) {
            void *have = libc ? dlvsym(libc, gv->name, gv->version) : NULL;
            void *want = libc ? dlsym(libc, gv->name) : NULL;
            gv->is_default = !have || have == want;
        }
    }
    if (libc) {
        dlclose(libc);
    }
}

/* The loader relocates the d_ptr entries of most objects in place, but not
 * all (the vDSO's dynamic section is read-only): take an address below the
 * load base as still relative. */
static const void *got_dyn_ptr(uintptr_t base, ElfW(Addr) p)
{
    return (const void *)(p < base ? base + p : p);
}

static void got_read_dynamic(got_object_t *o, const ElfW(Dyn) *dyn)
{
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_SYMTAB:
            o->symtab = got_dyn_ptr(o->base, dyn->d_un.d_ptr);
            break;
        case DT_STRTAB:
            o->strtab = got_dyn_ptr(o->base, dyn->d_un.d_ptr);
            break;
        case DT_VERSYM:
            o->versym = got_dyn_ptr(o->base, dyn->d_un.d_ptr);
            break;
        case DT_VERNEED:
            o->verneed = got_dyn_ptr(o->base, dyn->d_un.d_ptr);
            break;
        case DT_VERNEEDNUM:
            o->verneed_count = dyn->d_un.d_val;
            break;
        case DT_JMPREL:
            o->jmprel = got_dyn_ptr(o->base, dyn->d_un.d_ptr);
            break;
        case DT_PLTRELSZ:
            o->jmprel_size = dyn->d_un.d_val;
            break;
        case DT_RELA:
            o->rela = got_dyn_ptr(o->base, dyn->d_un.d_ptr);
            break;
        case DT_RELASZ:
            o->rela_size = dyn->d_un.d_val;
            break;
        default:
            break;
        }
    }
}

/* The version a symbol index requires, or NULL (none, or the base). */
static const char *got_version_of(const got_object_t *o, size_t sym)
{
    const ElfW(Verneed) *vn = o->verneed;
    ElfW(Half) want;
    size_t i;

    if (!o->versym || !vn) {
        return NULL;
    }
    want = o->versym[sym] & 0x7fff;
    if (want < 2) {
        return NULL;
    }
    for (i = 0; i < o->verneed_count; i++) {
        const ElfW(Vernaux) *va =
            (const ElfW(Vernaux) *)((const char *)vn + vn->vn_aux);
        for (unsigned a = 0; a < vn->vn_cnt; a++) {
            if (va->vna_other == want) {
                return o->strtab + va->vna_name;
            }
            va = (const ElfW(Vernaux) *)((const char *)va + va->vna_next);
        }
        if (!vn->vn_next) {
            break;
        }
        vn = (const ElfW(Verneed) *)((const char *)vn + vn->vn_next);
    }
    return NULL;
}

static const vt_got_hook_t *got_match(got_walk_t *wk,
                                      const got_object_t *o, size_t sym)
{
    const char *name = o->strtab + o->symtab[sym].st_name;
    for (size_t i = 0; i < wk->n; i++) {
        const vt_got_hook_t *h = &wk->hooks[i];
        if (strcmp(name, h->name) == 0) {
            const char *v;
            got_version_t *gv;
            if (!h->default_only) {
                return h;
            }
            v = got_version_of(o, sym);
            if (!v) {
                return h;
            }
            if (wk->collect) {
                got_version_note(name, v);
                return NULL;
            }
            gv = got_version_find(name, v);
            return gv && gv->is_default == 1 ? h : NULL;
        }
    }
    return NULL;
}

static int got_remember(void **slot, void *before, const got_object_t *o,
                        int in_relro)
{
    if (got_undo_len == got_undo_cap) {
        size_t cap = got_undo_cap ? 2 * got_undo_cap : 64;
        got_undo_t *u = realloc(got_undo, cap * sizeof(*u));
        if (!u) {
            return ENOMEM;
        }
        got_undo = u;
        got_undo_cap = cap;
    }
    got_undo[got_undo_len++] = (got_undo_t){
        slot, before, in_relro ? o->relro_lo : 0, in_relro ? o->relro_hi : 0
    };
    return 0;
}

static void got_write(void **slot, void *value)
{
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
}

static int got_patch_table(got_walk_t *wk, got_object_t *o,
                           const ElfW(Rela) *rel, size_t size)
{
    size_t count = size / sizeof(*rel);
    for (size_t i = 0; i < count; i++) {
        unsigned long type = ELF64_R_TYPE(rel[i].r_info);
        size_t sym = ELF64_R_SYM(rel[i].r_info);
        const vt_got_hook_t *h;
        void **slot;
        int in_relro;

        if ((type != VT_GOT_JUMP_SLOT && type != VT_GOT_GLOB_DAT) || !sym) {
            continue;
        }
        h = got_match(wk, o, sym);
        if (!h || wk->collect) {
            continue;
        }
        slot = (void **)(o->base + rel[i].r_offset);
        if (__atomic_load_n(slot, __ATOMIC_ACQUIRE) == h->hook) {
            continue;
        }
        in_relro = (uintptr_t)slot >= o->relro_lo
                   && (uintptr_t)slot < o->relro_hi;
        if (in_relro && !o->relro_open) {
            if (mprotect((void *)o->relro_lo, o->relro_hi - o->relro_lo,
                         PROT_READ | PROT_WRITE) != 0) {
                return errno;
            }
            o->relro_open = 1;
        }
        if (got_remember(slot, *slot, o, in_relro) != 0) {
            return ENOMEM;
        }
        got_write(slot, h->hook);
        wk->patched++;
    }
    return 0;
}

static int got_visit(struct dl_phdr_info *info, size_t size, void *data)
{
    got_walk_t *wk = data;
    got_object_t o = { .base = info->dlpi_addr };
    const ElfW(Dyn) *dyn = NULL;
    long page = sysconf(_SC_PAGESIZE);
    int rv;

    (void)size;
    if (!wk->filter(info->dlpi_name ? info->dlpi_name : "", o.base,
                    wk->baton)) {
        return 0;
    }
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC) {
            dyn = (const ElfW(Dyn) *)(o.base + ph->p_vaddr);
        }
        else if (ph->p_type == PT_GNU_RELRO) {
            o.relro_lo = (o.base + ph->p_vaddr) & ~(uintptr_t)(page - 1);
            /* Down, as the loader rounds it: the page the end falls in
             * stays writable (it holds .data or .got.plt), and making it
             * read-only after the write would crash the next store. */
            o.relro_hi = (o.base + ph->p_vaddr + ph->p_memsz)
                         & ~(uintptr_t)(page - 1);
        }
    }
    if (!dyn) {
        return 0;
    }
    got_read_dynamic(&o, dyn);
    if (!o.symtab || !o.strtab) {
        return 0;
    }
    rv = got_patch_table(wk, &o, o.jmprel, o.jmprel_size);
    if (rv == 0) {
        rv = got_patch_table(wk, &o, o.rela, o.rela_size);
    }
    if (o.relro_open) {
        mprotect((void *)o.relro_lo, o.relro_hi - o.relro_lo, PROT_READ);
    }
    if (rv != 0) {
        wk->error = rv;
        return 1;   /* stop the walk */
    }
    return 0;
}

apr_status_t vt_got_patch(const vt_got_hook_t *hooks, apr_size_t n,
                          vt_got_filter_fn filter, void *baton,
                          apr_size_t *patched)
{
    got_walk_t wk = { hooks, n, filter, baton, 1, 0, 0 };

    pthread_mutex_lock(&got_lock);
    dl_iterate_phdr(got_visit, &wk);    /* note the versions met */
    got_versions_decide();
    wk.collect = 0;
    dl_iterate_phdr(got_visit, &wk);    /* patch */
    pthread_mutex_unlock(&got_lock);
    if (patched) {
        *patched = wk.patched;
    }
    return wk.error;
}

apr_size_t vt_got_restore(void)
{
    apr_size_t n = 0;

    pthread_mutex_lock(&got_lock);
    while (got_undo_len) {
        got_undo_t *u = &got_undo[--got_undo_len];
        if (u->relro_lo) {
            if (mprotect((void *)u->relro_lo, u->relro_hi - u->relro_lo,
                         PROT_READ | PROT_WRITE) != 0) {
                continue;   /* the object is gone: nothing to restore */
            }
        }
        got_write(u->slot, u->before);
        if (u->relro_lo) {
            mprotect((void *)u->relro_lo, u->relro_hi - u->relro_lo,
                     PROT_READ);
        }
        n++;
    }
    free(got_undo);
    got_undo = NULL;
    got_undo_cap = 0;
    pthread_mutex_unlock(&got_lock);
    return n;
}

#else /* !VT_GOT_JUMP_SLOT */

apr_status_t vt_got_patch(const vt_got_hook_t *hooks, apr_size_t n,
                          vt_got_filter_fn filter, void *baton,
                          apr_size_t *patched)
{
    (void)hooks; (void)n; (void)filter; (void)baton;
    if (patched) {
        *patched = 0;
    }
    return APR_ENOTIMPL;
}

apr_size_t vt_got_restore(void)
{
    return 0;
}

#endif
