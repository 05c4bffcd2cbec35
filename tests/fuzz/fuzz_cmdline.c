/*
 * The control connection as a client drives it: the input is the byte stream a client sends.
 *
 * Each input runs through three sessions (different configurations and TCP segmentations):
 * the bytes go into one end of a socketpair in chunks, the front's real line reader
 * (ctl_fill + ctl_next_line, with max_line as the server sets it) takes lines off the other end,
 * and each line goes to the real front_dispatch of a front that is not logged in (the verb /
 * argument split, the command table, every pre-login handler; PASS talks to a fake monitor
 * that always refuses). The replies the front writes back are checked to be well-formed RFC 959
 * replies (CRLF lines, multi-line framing, CR padded with NUL, nothing without an answer).
 *
 * Not reached: commands after login (they need a user process), QUIT (it exits the process),
 * and AUTH's handshake (no certificate is loaded, so AUTH TLS answers 431). The arguments of
 * PORT and EPRT are also given to their parsers (dc_parse_port/dc_parse_eprt), as after login.
 *
 * Also: telnet_unescape on the raw input, and reply_multi / reply_dashed / reply_quote_path on
 * every line read.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "ctlio.h"
#include "datachan.h"
#include "front.h"
#include "listing.h"
#include "log.h"
#include "privsep.h"
#include "reply.h"
#include "util.h"

#include "fuzz.h"

static struct config cfg_plain, cfg_vhosts;
static struct session_info si;
static int mon_sv[2] = {-1, -1}; /* [0] the front's end, [1] the fake monitor's */
static struct msg *mon_reply;

static void quiet(const char *msg)
{
    (void)msg;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    log_open(LOG_FTP, -1); /* below every priority: nothing is logged */
    config_defaults(&cfg_plain);
    config_defaults(&cfg_vhosts);
    if (config_parse_text(&cfg_vhosts, "fuzz",
                          "allow_rein = yes\nanonymous = yes\n"
                          "[host ftp.example.org]\nbanner = Example FTP\n"
                          "[host files.example.net]\nroot_dir = /srv/files\n",
                          quiet) < 0)
        abort();
    memset(&si, 0, sizeof si);
    struct sockaddr_in *l = (struct sockaddr_in *)&si.local, *p = (struct sockaddr_in *)&si.peer;
    l->sin_family = p->sin_family = AF_INET;
    l->sin_addr.s_addr = htonl(0x7f000001);
    p->sin_addr.s_addr = htonl(0xc0000207);
    l->sin_port = htons(21);
    p->sin_port = htons(40000);
    snprintf(si.sid, sizeof si.sid, "fuzz");
    snprintf(si.local_str, sizeof si.local_str, "127.0.0.1");
    snprintf(si.peer_str, sizeof si.peer_str, "192.0.2.7");
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, mon_sv) < 0)
        abort();
    fcntl(mon_sv[1], F_SETFL, O_NONBLOCK);
    mon_reply = msg_new();
    msg_init(mon_reply, MSG_LOGIN_RESULT);
    msg_put_u32(mon_reply, 0);   /* ok */
    msg_put_u32(mon_reply, 530); /* code */
    msg_put_u32(mon_reply, 0);   /* close */
    msg_put_str(mon_reply, "Login incorrect.");
    msg_put_u64(mon_reply, UINT64_MAX); /* the user's file size limit: none */
    msg_put_str(mon_reply, "");         /* no account: the login failed */
    msg_put_u32(mon_reply, 0);          /* write_enable */
    msg_put_u64(mon_reply, 0);          /* max_rate */
    return 0;
}

/* The fake monitor: one refusal always waits for the front; what the front sent is dropped. */
static void monitor_before(void)
{
    struct pollfd p = {.fd = mon_sv[0], .events = POLLIN};
    if (poll(&p, 1, 0) == 0 && msg_send(mon_sv[1], mon_reply) < 0)
        abort();
}

static void monitor_after(void)
{
    static unsigned char sink[MSG_MAX];
    while (recv(mon_sv[1], sink, sizeof sink, MSG_DONTWAIT) > 0)
        ;
}

static bool is_code(const char *s, size_t n)
{
    return n >= 4 && s[0] >= '1' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
           s[2] <= '9';
}

/*
 * out holds one or more complete replies: CRLF-terminated lines; a reply is "DDD text" or
 * "DDD-text" ... "DDD text" with the same code; a CR inside a line is followed by NUL, and there
 * is no LF without its CR.
 */
static void check_replies(const char *out, size_t len, bool need_one)
{
    if (need_one)
        FUZZ_ASSERT(len > 0);
    if (len == 0)
        return;
    FUZZ_ASSERT(len >= 2 && out[len - 2] == '\r' && out[len - 1] == '\n');
    char open_code[3];
    bool in_multi = false;
    size_t pos = 0;
    while (pos < len) {
        const char *line = out + pos;
        const char *lf = memchr(line, '\n', len - pos);
        FUZZ_ASSERT(lf != NULL && lf > line && lf[-1] == '\r');
        size_t n = (size_t)(lf - line) - 1; /* without CRLF */
        for (size_t i = 0; i < n; i++)
            if (line[i] == '\r')
                FUZZ_ASSERT(i + 1 < n && line[i + 1] == '\0');
        if (!in_multi) {
            FUZZ_ASSERT(is_code(line, n) && (line[3] == ' ' || line[3] == '-'));
            if (line[3] == '-') {
                in_multi = true;
                memcpy(open_code, line, 3);
            }
        } else if (n >= 4 && memcmp(line, open_code, 3) == 0 && line[3] == ' ') {
            in_multi = false;
        }
        pos += n + 2;
    }
    FUZZ_ASSERT(!in_multi);
}

static void drain_replies(int fd, struct sbuf *b)
{
    char tmp[65536];
    ssize_t r;
    sbuf_reset(b);
    while ((r = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT)) > 0)
        sbuf_add(b, tmp, (size_t)r);
}

/* The verb as front_dispatch sees it: up to the first space, compared as a C string. */
static bool verb_is(const char *line, size_t len, const char *name)
{
    const char *sp = memchr(line, ' ', len);
    size_t vlen = sp ? (size_t)(sp - line) : len;
    if (vlen == 0 || vlen >= 8)
        return false;
    char verb[8];
    memcpy(verb, line, vlen);
    verb[vlen] = '\0';
    return str_ieq(verb, name);
}

static const char *arg_of(const char *line, size_t len)
{
    const char *sp = memchr(line, ' ', len);
    return sp ? sp + 1 : line + len;
}

static void check_reply_formatting(const char *line)
{
    struct sbuf b;
    sbuf_init(&b);
    reply_multi(&b, 211, line);
    check_replies(b.data, b.len, true);
    sbuf_reset(&b);
    reply_dashed(&b, 530, line);
    check_replies(b.data, b.len, true);
    sbuf_reset(&b);
    reply_one(&b, 250, line);
    check_replies(b.data, b.len, true);
    /* 257 "path": quotes doubled; unquoting gives the path back. */
    sbuf_reset(&b);
    reply_quote_path(&b, line);
    FUZZ_ASSERT(b.len >= 2 && b.data[0] == '"' && b.data[b.len - 1] == '"');
    size_t o = 0;
    for (size_t i = 1; i + 1 < b.len; i++) {
        if (b.data[i] == '"') {
            FUZZ_ASSERT(i + 2 < b.len && b.data[i + 1] == '"');
            i++;
        }
        FUZZ_ASSERT(line[o] == b.data[i]);
        o++;
    }
    FUZZ_ASSERT(line[o] == '\0');
    sbuf_free(&b);
}

/* What happens to one line: the parsers that would see its argument, then front_dispatch. */
static void handle_line(struct front *f, int client, char *line, size_t n, struct sbuf *replies,
                        bool formatting)
{
    if (formatting)
        check_reply_formatting(line);
    if (!memchr(line, '\0', n)) {
        const char *arg = arg_of(line, n);
        struct sockaddr_storage ss;
        unsigned proto = 0;
        if (verb_is(line, n, "PORT") && dc_parse_port(arg, &ss) == 0)
            FUZZ_ASSERT(ss.ss_family == AF_INET);
        if (verb_is(line, n, "EPRT")) {
            int rc = dc_parse_eprt(arg, &ss, &proto);
            FUZZ_ASSERT(rc == 0 || rc == -1 || rc == -2);
            if (rc == 0) {
                FUZZ_ASSERT((proto == 1 && ss.ss_family == AF_INET) ||
                            (proto == 2 && ss.ss_family == AF_INET6));
                FUZZ_ASSERT(sockaddr_port(&ss) >= 1 && sockaddr_port(&ss) <= 65535);
            }
        }
    }
    if (verb_is(line, n, "QUIT"))
        return; /* 221 and exit(0): the one command that ends the process */
    bool pass = verb_is(line, n, "PASS"); /* the one that asks the monitor */
    if (pass)
        monitor_before();
    front_dispatch(f, line, n);
    if (pass)
        monitor_after();
    FUZZ_ASSERT(!f->logged_in);
    drain_replies(client, replies);
    check_replies(replies->data, replies->len, true);
}

struct variant {
    const struct config *cfg;
    bool tls;           /* as after AUTH TLS (no TLS object: the handlers only look at the flag) */
    unsigned max_line;  /* max_line_length */
    unsigned chunk_max; /* 0: everything at once; else chunks of 1..chunk_max bytes */
    bool formatting;    /* also check reply_* on each line (once per input is enough) */
};

static void run_session(const struct variant *v, const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        abort();
    static struct front f;
    memset(&f, 0, sizeof f);
    f.si_own = si;
    f.si_own.cfg = v->cfg;
    f.si = &f.si_own;
    f.cfg = v->cfg;
    f.mon_fd = mon_sv[0];
    f.user_fd = -1;
    f.type = 'A';
    f.mlst_facts = FACT_DEFAULT;
    f.tls = v->tls;
    f.login_deadline = now_ms() + 60000;
    dc_init(&f.dc);
    static struct msg *m;
    if (!m)
        m = msg_new();
    f.m = m;
    ctl_init(&f.ctl, sv[0], v->max_line);
    size_t line_cap = v->max_line + 1;
    char *line = xmalloc(line_cap);
    struct sbuf replies;
    sbuf_init(&replies);

    uint32_t seed = (uint32_t)size * 2654435761u;
    size_t off = 0;
    bool closed = false;
    for (;;) {
        if (off < size) {
            size_t k = size - off;
            if (v->chunk_max) {
                seed = seed * 1103515245u + 12345u;
                size_t c = 1 + (seed >> 16) % v->chunk_max;
                if (c < k)
                    k = c;
            }
            ssize_t w = write(sv[1], data + off, k);
            FUZZ_ASSERT(w > 0);
            off += (size_t)w;
        } else if (!closed) {
            shutdown(sv[1], SHUT_WR);
            closed = true;
        }
        bool eof = false;
        for (;;) {
            size_t n = 0;
            int r = ctl_next_line(&f.ctl, line, line_cap, &n);
            FUZZ_ASSERT(f.ctl.len <= f.ctl.cap);
            if (r == CTL_LINE) {
                FUZZ_ASSERT(n <= v->max_line && line[n] == '\0');
                FUZZ_ASSERT(!memchr(line, '\n', n));
                handle_line(&f, sv[1], line, n, &replies, v->formatting);
                continue;
            }
            if (r == CTL_TOOLONG) {
                front_reply(&f, 500, "Command line too long (at most %u bytes).", v->max_line);
                drain_replies(sv[1], &replies);
                check_replies(replies.data, replies.len, true);
                continue;
            }
            FUZZ_ASSERT(r == CTL_NONE);
            int fr = ctl_fill(&f.ctl);
            if (fr > 0)
                continue;
            eof = fr < 0;
            break;
        }
        if (eof)
            break;
        FUZZ_ASSERT(!closed); /* after the client's EOF, the reader must report EOF */
    }
    sbuf_free(&replies);
    free(line);
    free(f.ctl.buf);
    close(sv[0]);
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;

    /* Telnet clean-up on its own: never longer than its input; a no-op without IAC and CR NUL. */
    char *out = xmalloc(size ? size : 1);
    size_t o = telnet_unescape(data, size, out);
    FUZZ_ASSERT(o <= size);
    bool plain = !memchr(data, 0xff, size);
    for (size_t i = 0; plain && i + 1 < size; i++)
        if (data[i] == '\r' && data[i + 1] == '\0')
            plain = false;
    if (plain)
        FUZZ_ASSERT(o == size && memcmp(out, data, size) == 0);
    free(out);

    static const struct variant variants[] = {
        {&cfg_plain, false, 4096, 0, true},
        {&cfg_vhosts, true, 512, 13, false},
        {&cfg_vhosts, false, 600, 61, false},
    };
    for (size_t i = 0; i < ARRAY_LEN(variants); i++)
        run_session(&variants[i], data, size);
    return 0;
}
