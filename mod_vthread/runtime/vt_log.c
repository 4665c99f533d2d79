/* Runtime messages: see vt_log.h. */
#include "vt_log.h"

#include <stdarg.h>
#include <stdio.h>

void vt_log(const vt_config_t *cfg, int level, int msg_id,
            const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (cfg && cfg->log) {
        cfg->log(cfg->log_baton, level, msg_id, msg);
    }
    else {
        fprintf(stderr, "mod_vthread: %s\n", msg);
    }
}
