/* pamcost: what one PAM password check costs, and how much of it is the password hash
 * (bench/README.md, table 4). Each check runs in a fresh forked process, as in a server
 * started per connection:
 *
 *   pamcost SERVICE USER COUNT      password from the environment variable PAMCOST_PASS
 *
 * prints one JSON line: the median CPU of pam_start + pam_authenticate + pam_end per process
 * (wait4), how many times the PAM modules called crypt_r(3) per check, and the median CPU of
 * one crypt_r call, page faults of its scratch memory included.
 *
 * crypt_r is counted by interposition: this executable exports its own crypt_r (linked with
 * -rdynamic), which the dynamic linker finds before libcrypt's when pam_unix.so looks the
 * symbol up; it times the call and hands it to the real one (dlsym RTLD_NEXT, which finds it
 * because this tool links libcrypt itself). Only this measuring tool does that; the servers run
 * unmodified.
 */
#define _GNU_SOURCE
#include <crypt.h>
#include <dlfcn.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *password;
static int calls;
static double crypt_s;

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *crypt_r(const char *phrase, const char *setting, struct crypt_data *data)
{
    static char *(*real)(const char *, const char *, struct crypt_data *);
    if (!real)
        real =
            (char *(*)(const char *, const char *, struct crypt_data *))dlsym(RTLD_NEXT, "crypt_r");
    if (!real)
        abort();
    double t0 = thread_cpu();
    char *r = real(phrase, setting, data);
    crypt_s += thread_cpu() - t0;
    calls++;
    return r;
}

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
    (void)data;
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    if (!r)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++)
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
            r[i].resp = strdup(password);
    *resp = r;
    return PAM_SUCCESS;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    password = getenv("PAMCOST_PASS");
    int count = argc == 4 ? atoi(argv[3]) : 0;
    if (!password || count <= 0 || count > 10000) {
        fprintf(stderr, "usage: PAMCOST_PASS=... pamcost SERVICE USER COUNT\n");
        return 2;
    }
    double *auth = calloc((size_t)count, sizeof *auth);
    double *one = calloc((size_t)count, sizeof *one);
    int ncalls = -1;
    for (int i = 0; i < count; i++) {
        int p[2];
        if (pipe(p) < 0)
            return 1;
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0) {
            close(p[0]);
            struct pam_conv c = {conv, NULL};
            pam_handle_t *h = NULL;
            int rc = pam_start(argv[1], argv[2], &c, &h);
            if (rc == PAM_SUCCESS)
                rc = pam_authenticate(h, PAM_DISALLOW_NULL_AUTHTOK);
            pam_end(h, rc);
            char line[128];
            int n = snprintf(line, sizeof line, "%d %d %.9f\n", rc, calls, crypt_s);
            if (write(p[1], line, (size_t)n) != n)
                _exit(1);
            _exit(0);
        }
        close(p[1]);
        char line[128] = "";
        ssize_t n = read(p[0], line, sizeof line - 1);
        close(p[0]);
        int status;
        struct rusage ru;
        if (wait4(pid, &status, 0, &ru) < 0 || n <= 0)
            return 1;
        int rc, k;
        double cs;
        if (sscanf(line, "%d %d %lf", &rc, &k, &cs) != 3 || rc != PAM_SUCCESS) {
            fprintf(stderr, "pamcost: pam_authenticate failed (%d)\n", rc);
            return 1;
        }
        auth[i] = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                  (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        one[i] = k ? cs / k : 0;
        ncalls = k;
    }
    printf("{\"auth_ms\": %.3f, \"crypt_calls\": %d, \"crypt_ms\": %.3f}\n",
           1000 * median(auth, count), ncalls, 1000 * median(one, count));
    return 0;
}
