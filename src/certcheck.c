#include "certcheck.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drop.h"
#include "privsep.h"
#include "sandbox.h"
#include "util.h"

/* Verification of a chain of at most CERTID_MAX_CHAIN certificates takes milliseconds. */
#define CHECK_TIMEOUT_MS 10000

static void put_names(struct msg *m, char *const *v, size_t n)
{
    msg_put_u32(m, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        msg_put_str(m, v[i]);
}

static _Noreturn void checker(const struct session_info *si, int chan,
                              const unsigned char *const *der, const size_t *len, size_t n)
{
    const struct config *cfg = si->cfg;
    struct msg *m = msg_new();
    struct certid id;
    memset(&id, 0, sizeof id);
    char why[512] = "";
    /* The CAs and the CRL are the admin's files, read before the drop; the chain is read after
     * it. */
    X509_STORE *store = certid_store(cfg, why, sizeof why);
    struct identity nid = {.uid = si->nopriv_uid, .gid = si->nopriv_gid};
    int rc = -1;
    if (store &&
        drop_privileges(&nid, cfg->rootless ? NULL : cfg->empty_dir, why, sizeof why) == 0 &&
        sandbox_rlimits(cfg, SB_WORKER, why, sizeof why) == 0 &&
        sandbox_seccomp(cfg, SB_WORKER, -1, why, sizeof why) == 0)
        rc = certid_verify_with(store, der, len, n, &id, why, sizeof why);
    msg_init(m, MSG_CERT_CHECKED);
    msg_put_u32(m, rc == 0);
    msg_put_str(m, why);
    msg_put_str(m, id.subject);
    msg_put_str(m, id.issuer);
    msg_put_u32(m, id.issuer_trusted);
    put_names(m, id.emails, id.nemails);
    put_names(m, id.upns, id.nupns);
    msg_send(chan, m);
    _exit(0);
}

static bool get_names(struct msg *m, char **v, size_t *n)
{
    uint32_t count = msg_get_u32(m);
    if (count > CERTID_MAX_NAMES)
        return false;
    for (uint32_t i = 0; i < count; i++) {
        char buf[256];
        msg_get_str(m, buf, sizeof buf);
        v[(*n)++] = strdup(buf);
        if (!v[*n - 1])
            return false;
    }
    return true;
}

int certcheck_verify(const struct session_info *si, const unsigned char *const *der,
                     const size_t *len, size_t n, struct certid *id, char *why, size_t whylen)
{
    memset(id, 0, sizeof *id);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(why, whylen, "socketpair: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        checker(si, sv[1], der, len, n);
    }
    close(sv[1]);
    struct msg *m = msg_new();
    struct pollfd p = {.fd = sv[0], .events = POLLIN};
    int rc = -1;
    snprintf(why, whylen, "the certificate check did not answer");
    if (poll(&p, 1, CHECK_TIMEOUT_MS) > 0 && msg_recv(sv[0], m) == 0 &&
        m->type == MSG_CERT_CHECKED) {
        uint32_t ok = msg_get_u32(m);
        msg_get_str(m, why, whylen);
        msg_get_str(m, id->subject, sizeof id->subject);
        msg_get_str(m, id->issuer, sizeof id->issuer);
        id->issuer_trusted = msg_get_u32(m) == 1;
        bool names = get_names(m, id->emails, &id->nemails) && get_names(m, id->upns, &id->nupns);
        if (names && msg_ok_end(m) && ok)
            rc = 0;
        else if (!names || !msg_ok_end(m))
            snprintf(why, whylen, "malformed answer from the certificate check");
    }
    msg_free(m);
    close(sv[0]);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (rc < 0)
        certid_free(id);
    return rc;
}
