/* How many sessions an account may have at once, counted across the per-connection process
 * trees (which share no memory): each session holds an flock(2) on one of the account's slot
 * files, which the kernel lets go of however the session ends (a SIGKILL, a crash). */
#ifndef FTPSD_SESSLIMIT_H
#define FTPSD_SESSLIMIT_H

#include <stddef.h>

#define SESSLIMIT_FULL (-1)
#define SESSLIMIT_ERROR (-2)

/* Takes a free slot of account's max in dir (made 0700 if missing; it must belong to this
 * process's user and be writable by it alone). Returns the descriptor that holds the slot
 * (close-on-exec; closing it gives the slot back), SESSLIMIT_FULL when all max are held, or
 * SESSLIMIT_ERROR with why. account: a name, written into file names escaped. */
int sesslimit_take(const char *dir, const char *account, unsigned max, char *why, size_t whylen);

/* Whether dir can hold slot files (see sesslimit_take), for ftpsd -t: NULL if so, or why not
 * (a static string) with errno set where it tells more. A missing dir is fine if its parent
 * exists: the first session makes it. */
const char *sesslimit_dir_problem(const char *dir);

#endif
