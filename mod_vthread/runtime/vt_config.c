/* The runtime's settings: defaults and checks. See vt_config.h. */
#include "vt_config.h"
#include "vt_stack.h"

#include <string.h>

void vt_config_default(vt_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->carriers = 0;
    cfg->stack_size = VT_STACK_DEFAULT_SIZE;
    cfg->max_fibers = 0;
    cfg->stack_cache_hot = 16;
    cfg->pinned_warn = 100 * 1000;
}

apr_status_t vt_config_check(const vt_config_t *cfg, const char **why)
{
    apr_size_t rounded;
    if (cfg->carriers < 0 || cfg->carriers > VT_MAX_CARRIERS) {
        *why = "carriers must be 0 (one per CPU) to 256";
        return APR_EINVAL;
    }
    if (vt_stack_size_round(cfg->stack_size, &rounded) != APR_SUCCESS) {
        *why = "stack size must be 16K to 64M";
        return APR_EINVAL;
    }
    if (cfg->pinned_warn < 0) {
        *why = "pinned-fiber threshold must be 0 (off) or positive";
        return APR_EINVAL;
    }
    if (cfg->stack_cache_hot > 1000000) {
        *why = "stack cache must keep at most 1000000 stacks committed";
        return APR_EINVAL;
    }
    *why = NULL;
    return APR_SUCCESS;
}
