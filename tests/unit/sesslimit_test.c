/* Session slots: how many are held, who holds them, what their files are called. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sesslimit.h"
#include "unit.h"

static bool exists(const char *dir, const char *name)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

int main(void)
{
    char base[] = "/tmp/ftpsd-sesslimit-XXXXXX";
    CHECK(mkdtemp(base) != NULL);
    char dir[300], why[512];
    snprintf(dir, sizeof dir, "%s/locks", base);

    /* Made at the first take, private. */
    CHECK(sesslimit_dir_problem(dir) == NULL);
    int a0 = sesslimit_take(dir, "alice", 2, why, sizeof why);
    struct stat st;
    CHECK(a0 >= 0 && stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
    int a1 = sesslimit_take(dir, "alice", 2, why, sizeof why);
    CHECK(a1 >= 0);
    CHECK(sesslimit_take(dir, "alice", 2, why, sizeof why) == SESSLIMIT_FULL);
    /* A raised limit has room at once; another account counts apart. */
    int a2 = sesslimit_take(dir, "alice", 3, why, sizeof why);
    CHECK(a2 >= 0);
    int b0 = sesslimit_take(dir, "bob", 1, why, sizeof why);
    CHECK(b0 >= 0);
    /* A slot given back is taken again. */
    close(a0);
    int again = sesslimit_take(dir, "alice", 3, why, sizeof why);
    CHECK(again >= 0);
    CHECK(sesslimit_take(dir, "alice", 3, why, sizeof why) == SESSLIMIT_FULL);
    /* Names a file name may not hold stay distinct: '/' and '%' escaped. */
    int odd = sesslimit_take(dir, "/anon%", 1, why, sizeof why);
    CHECK(odd >= 0 && exists(dir, "u_%2Fanon%25.0"));
    CHECK(exists(dir, "u_alice.0") && exists(dir, "u_alice.2") && exists(dir, "u_bob.0"));
    /* A slot file replaced by a link is not followed. */
    char link[400];
    snprintf(link, sizeof link, "%s/u_carol.0", dir);
    CHECK(symlink("/etc/passwd", link) == 0);
    CHECK(sesslimit_take(dir, "carol", 1, why, sizeof why) == SESSLIMIT_ERROR);
    CHECK(strstr(why, "u_carol.0") != NULL);
    /* Another user could write the directory: refused, and -t says why. */
    CHECK(chmod(dir, 0777) == 0);
    CHECK(sesslimit_take(dir, "dave", 1, why, sizeof why) == SESSLIMIT_ERROR);
    CHECK(strstr(why, "writable by others") != NULL);
    CHECK(sesslimit_dir_problem(dir) != NULL);
    char deep[400];
    snprintf(deep, sizeof deep, "%s/missing/locks", base);
    CHECK(sesslimit_dir_problem(deep) != NULL);
    CHECK(sesslimit_take(deep, "erin", 1, why, sizeof why) == SESSLIMIT_ERROR);
    close(a1);
    close(a2);
    close(b0);
    close(again);
    close(odd);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    CHECK(system(cmd) == 0);
    return unit_done("sesslimit");
}
