#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"
#include "util.h"

static const char *join(const char *cwd, const char *arg)
{
    static char out[VPATH_MAX];
    if (vpath_join(cwd, arg, out, sizeof out) < 0)
        return "(error)";
    return out;
}

int main(void)
{
    /* The directory of a configured file (xferlog_file, session_lock_dir). */
    char conf_dir[64];
    path_dir_of("/var/log/ftpsd/xferlog", conf_dir, sizeof conf_dir);
    CHECK_STR(conf_dir, "/var/log/ftpsd");
    path_dir_of("/xferlog", conf_dir, sizeof conf_dir);
    CHECK_STR(conf_dir, "/");
    path_dir_of("/run/ftpsd/", conf_dir, sizeof conf_dir);
    CHECK_STR(conf_dir, "/run/ftpsd");
    CHECK_STR(join("/", ""), "/");
    CHECK_STR(join("/", "."), "/");
    CHECK_STR(join("/", ".."), "/");
    CHECK_STR(join("/", "../../etc/passwd"), "/etc/passwd");
    CHECK_STR(join("/a/b", ".."), "/a");
    CHECK_STR(join("/a/b", "../../.."), "/");
    CHECK_STR(join("/a", "b/c"), "/a/b/c");
    CHECK_STR(join("/a", "/x//y/"), "/x/y");
    CHECK_STR(join("/a", "./b/./c/.."), "/a/b");
    CHECK_STR(join("/", "  spaced name "), "/  spaced name ");
    CHECK_STR(join("/", "..."), "/...");
    CHECK_STR(vpath_rel("/"), ".");
    CHECK_STR(vpath_rel("/a/b"), "a/b");

    char small[8];
    CHECK(vpath_join("/", "abcdefghijk", small, sizeof small) < 0);

    char parent[VPATH_MAX];
    const char *base;
    CHECK(vpath_split("/a/b", parent, sizeof parent, &base) == 0);
    CHECK_STR(parent, "/a");
    CHECK_STR(base, "b");
    CHECK(vpath_split("/a", parent, sizeof parent, &base) == 0);
    CHECK_STR(parent, "/");
    CHECK_STR(base, "a");
    CHECK(vpath_split("/", parent, sizeof parent, &base) < 0);

    /* openat2 keeps symlinks and ".." inside the root. */
    char tmpl[] = "/tmp/ftpsd-path-XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    char p[512];
    snprintf(p, sizeof p, "%s/inside", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/inside/escape", dir);
    CHECK(symlink("/etc", p) == 0);
    snprintf(p, sizeof p, "%s/inside/up", dir);
    CHECK(symlink("../../../../../..", p) == 0);
    snprintf(p, sizeof p, "%s/inside", dir);
    int root = open(p, O_PATH | O_DIRECTORY);
    CHECK(root >= 0);
    int fd = path_open(root, "/escape/passwd", O_RDONLY, 0);
    CHECK(fd < 0 && errno == ENOENT);
    fd = path_open(root, "/up/etc/passwd", O_RDONLY, 0);
    CHECK(fd < 0 && errno == ENOENT);
    fd = path_open(root, "/up", O_PATH | O_DIRECTORY, 0);
    CHECK(fd >= 0); /* resolves to the root itself */
    struct stat a, b;
    CHECK(fstat(fd, &a) == 0 && fstat(root, &b) == 0 && a.st_ino == b.st_ino);
    close(fd);
    int dfd = path_open_parent(root, "/newfile", &base);
    CHECK(dfd >= 0);
    CHECK_STR(base, "newfile");
    close(dfd);
    close(root);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return unit_done("path");
}
