/*
 * Privilege-separation messages: what a compromised peer process could send. msg_recv takes
 * the input as one SOCK_SEQPACKET datagram (header + payload, as the processes exchange them),
 * then the payload is decoded field by field with msg_get_u32/u64/str/blob: once with the
 * field layout of every real message (the decoders in monitor.c, front.c, session.c, xfer.c,
 * worker.c), once under a script taken from the input's last bytes.
 *
 * Input: byte 0 picks how the payload reaches the decoder (0: msg_recv from a socketpair, with
 * the header taken from the input; 1: written into a struct msg directly), the rest is the
 * message.
 *
 * Checked: the read cursor never passes the payload; once a get fails the message stays bad and
 * later gets return 0 / ""; a string that decodes is NUL-free and shorter than its buffer; a
 * blob lies inside the payload; and fields put with msg_put_* come back unchanged.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "certid.h"
#include "path.h"
#include "privsep.h"
#include "util.h"

#include "fuzz.h"

static int sv[2] = {-1, -1};
static struct msg *m;
static char *strbuf; /* MSG_MAX bytes, as front.c's reply text */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    m = msg_new();
    strbuf = xmalloc(MSG_MAX);
    return 0;
}

static void check_state(const struct msg *x)
{
    FUZZ_ASSERT(x->rpos <= x->len && x->len <= MSG_MAX);
}

static uint32_t get_u32(struct msg *x)
{
    bool was_bad = x->bad;
    size_t pos = x->rpos;
    uint32_t v = msg_get_u32(x);
    check_state(x);
    if (was_bad)
        FUZZ_ASSERT(x->bad && v == 0 && x->rpos == pos);
    if (!x->bad)
        FUZZ_ASSERT(x->rpos == pos + 4);
    return v;
}

static uint64_t get_u64(struct msg *x)
{
    bool was_bad = x->bad;
    size_t pos = x->rpos;
    uint64_t v = msg_get_u64(x);
    check_state(x);
    if (was_bad)
        FUZZ_ASSERT(x->bad && v == 0 && x->rpos == pos);
    if (!x->bad)
        FUZZ_ASSERT(x->rpos == pos + 8);
    return v;
}

static void get_str(struct msg *x, char *out, size_t cap)
{
    bool was_bad = x->bad;
    size_t pos = x->rpos;
    memset(out, 'X', cap < 64 ? cap : 64);
    msg_get_str(x, out, cap);
    check_state(x);
    size_t n = strnlen(out, cap);
    FUZZ_ASSERT(n < cap);
    if (was_bad || x->bad)
        FUZZ_ASSERT(n == 0);
    if (!x->bad)
        FUZZ_ASSERT(x->rpos == pos + 4 + n && memcmp(x->data + pos + 4, out, n) == 0);
}

static size_t get_blob(struct msg *x, size_t max)
{
    size_t pos = x->rpos;
    const unsigned char *p = (const unsigned char *)"junk";
    size_t n = msg_get_blob(x, &p, max);
    check_state(x);
    if (x->bad) {
        FUZZ_ASSERT(n == 0 && p == NULL);
    } else {
        FUZZ_ASSERT(n <= max && p == x->data + pos + 4 && x->rpos == pos + 4 + n);
        if (n) /* touch it: ASan checks that it lies inside the message */
            FUZZ_ASSERT(p[0] == x->data[pos + 4] && p[n - 1] == x->data[pos + 3 + n]);
    }
    return n;
}

/* The field layouts of the real decoders (see privsep.h for the message types). */
static void decode_real(struct msg *x, unsigned which)
{
    size_t len = x->len;
    x->rpos = 0;
    x->bad = false;
    char small[512], path[VPATH_MAX];
    switch (which % 9) {
    case 0: /* MSG_LOGIN, monitor.c parse_login */
        get_u32(x);
        get_str(x, small, 256);
        get_u32(x);
        get_str(x, strbuf, 1024);
        for (uint32_t i = 0, n = get_u32(x); i < n && i < CERTID_MAX_CHAIN; i++)
            get_blob(x, 64 * 1024);
        break;
    case 1: /* MSG_LOGIN_RESULT, front_cmds.c login_request */
        get_u32(x);
        get_u32(x);
        get_u32(x);
        get_str(x, strbuf, MSG_MAX);
        get_u64(x);
        get_str(x, strbuf, 256);
        get_u32(x);
        get_u64(x);
        break;
    case 2: /* MSG_PEER */
        get_u32(x);
        get_blob(x, 16);
        get_u32(x);
        break;
    case 3: /* MSG_XFERLOG */
        get_u64(x);
        get_u32(x);
        get_u32(x);
        get_u32(x);
        get_u32(x);
        get_str(x, path, sizeof path);
        break;
    case 4: /* MSG_REQ, session.c */
        get_u32(x);
        get_u32(x);
        get_u32(x);
        get_u64(x);
        get_str(x, path, sizeof path);
        get_str(x, path, sizeof path);
        break;
    case 5: /* MSG_REPLY, front.c front_user_request */
        get_u32(x);
        get_str(x, strbuf, MSG_MAX);
        get_u64(x);
        get_str(x, path, sizeof path);
        break;
    case 6: /* MSG_JOB, worker.c */
        for (int i = 0; i < 4; i++)
            get_u32(x);
        get_u64(x);
        break;
    case 7: /* MSG_WORKER_KILLED, monitor.c */
        get_u32(x);
        get_u64(x);
        break;
    default: /* MSG_RESULT, xfer.c */
        get_u32(x);
        get_u64(x);
        get_str(x, small, 512);
        get_str(x, small, 128);
        break;
    }
    bool end = msg_ok_end(x);
    FUZZ_ASSERT(end == (!x->bad && x->rpos == len));
}

/* Gets chosen by the script bytes, with buffer sizes chosen by them too. */
static void decode_script(struct msg *x, const uint8_t *script, size_t n)
{
    x->rpos = 0;
    x->bad = false;
    char buf[300];
    for (size_t i = 0; i < n; i++) {
        uint8_t op = script[i];
        switch (op & 3) {
        case 0:
            get_u32(x);
            break;
        case 1:
            get_u64(x);
            break;
        case 2:
            get_str(x, buf, 1 + (op >> 2) * 4);
            break;
        default:
            get_blob(x, (size_t)(op >> 2) * 8);
            break;
        }
    }
    (void)msg_ok_end(x);
}

/* msg_put_* then msg_get_* of the same fields gives them back. */
static void round_trip(const uint8_t *data, size_t size)
{
    struct msg *w = m;
    msg_init(w, MSG_REQ);
    size_t half = size / 2;
    char *s = xmalloc(half + 1);
    memcpy(s, data, half);
    s[half] = '\0';
    uint32_t a = size >= 4 ? (uint32_t)data[0] << 24 | data[1] << 16 | data[2] << 8 | data[3] : 7;
    uint64_t b = (uint64_t)a << 32 | (uint32_t)size;
    msg_put_u32(w, a);
    msg_put_str(w, s);
    msg_put_u64(w, b);
    msg_put_blob(w, data + half, size - half);
    FUZZ_ASSERT(!w->bad);
    w->rpos = 0;
    FUZZ_ASSERT(get_u32(w) == a);
    get_str(w, strbuf, MSG_MAX);
    FUZZ_ASSERT(strcmp(strbuf, s) == 0);
    FUZZ_ASSERT(get_u64(w) == b);
    const unsigned char *p;
    size_t bl = msg_get_blob(w, &p, MSG_MAX);
    FUZZ_ASSERT(bl == size - half && (bl == 0 || memcmp(p, data + half, bl) == 0));
    FUZZ_ASSERT(msg_ok_end(w));
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (mode & 1) {
        msg_init(m, MSG_REPLY);
        m->len = n < MSG_MAX ? n : MSG_MAX;
        memcpy(m->data, p, m->len);
    } else {
        /* The whole datagram: an 8-byte header (type, length) and the payload. */
        ssize_t w = send(sv[1], p, n, MSG_DONTWAIT);
        FUZZ_ASSERT(w == (ssize_t)n);
        int rc = msg_recv(sv[0], m);
        if (rc < 0) {
            FUZZ_ASSERT(m->fd == -1);
            round_trip(p, n);
            return 0;
        }
        FUZZ_ASSERT(n >= 8 && m->len == n - 8 && memcmp(m->data, p + 8, m->len) == 0);
        FUZZ_ASSERT(m->fd == -1);
    }
    check_state(m);
    for (unsigned which = 0; which < 9; which++)
        decode_real(m, which);
    size_t sl = n < 16 ? n : 16;
    decode_script(m, p + n - sl, sl);
    round_trip(p, n);
    return 0;
}
