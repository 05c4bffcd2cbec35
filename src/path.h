/*
 * Virtual paths inside the user's root. The user process keeps its working directory as a
 * canonical absolute path ("/", "/a/b"); every argument is joined to it lexically, and the
 * result is opened with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) below the root
 * descriptor, so neither ".." nor a symlink can leave the root even without chroot.
 */
#ifndef FTPSD_PATH_H
#define FTPSD_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define VPATH_MAX 4096

/*
 * Joins cwd and arg (relative or absolute) into a canonical absolute path: no "." or ".."
 * components, no repeated or trailing '/'; ".." at the root stays at the root.
 * Returns 0, or -1 when the result would not fit in cap bytes.
 */
int vpath_join(const char *cwd, const char *arg, char *out, size_t cap);

/* The path to hand to openat2 for a canonical vpath: "." for "/", else vpath without the '/'. */
const char *vpath_rel(const char *vpath);

/* Splits a canonical vpath into its parent (canonical) and last component. -1 for "/". */
int vpath_split(const char *vpath, char *parent, size_t pcap, const char **base);

/* openat2 below rootfd with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS (+ extra resolve flags). */
int path_openat2(int rootfd, const char *vpath, int flags, mode_t mode, unsigned long long resolve);
int path_open(int rootfd, const char *vpath, int flags, mode_t mode);
/*
 * Opens the parent directory of vpath (following symlinks inside the root) and points *base at
 * the last component, for the *at() calls that act on a name (mkdirat, unlinkat, renameat).
 */
int path_open_parent(int rootfd, const char *vpath, const char **base);

#endif
