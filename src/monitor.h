/* The monitor: the root process of a session. It never reads client bytes. */
#ifndef FTPSD_MONITOR_H
#define FTPSD_MONITOR_H

#include "config.h"

/* Serves the control connection on fd 0/1 until the session ends; then exits. */
_Noreturn void monitor_run(struct config *cfg);

#endif
