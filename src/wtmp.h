/* A session's login and logout in the wtmp file, so that last(1) lists FTP sessions with the
 * others (as BSD ftpd and ProFTPD do). */
#ifndef FTPSD_WTMP_H
#define FTPSD_WTMP_H

#include "session_info.h"

/* The line both records name: "ftpd" and the monitor's pid, which pairs them for last(1). */
void wtmp_login(const char *file, const char *user, const struct session_info *si);
void wtmp_logout(const char *file, const struct session_info *si);

#endif
