/* Reply formatting, Telnet clean-up, TYPE A conversion, listing formats, message framing. */
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ascii.h"
#include "ctlio.h"
#include "listing.h"
#include "privsep.h"
#include "reply.h"
#include "unit.h"
#include "util.h"

static const char *to_net(const char *in, bool *cr)
{
    static char out[256];
    size_t n = ascii_to_net(in, strlen(in), out, cr);
    out[n] = '\0';
    return out;
}

static const char *from_net(const char *in, bool *cr)
{
    static char out[256];
    size_t n = ascii_from_net(in, strlen(in), out, cr);
    out[n] = '\0';
    return out;
}

static const char *telnet(const char *in, size_t n)
{
    static char out[256];
    size_t o = telnet_unescape((const unsigned char *)in, n, out);
    out[o] = '\0';
    return out;
}

int main(void)
{
    struct sbuf b;
    sbuf_init(&b);
    reply_one(&b, 200, "ok");
    CHECK_STR(b.data, "200 ok\r\n");
    sbuf_reset(&b);
    reply_multi(&b, 211, "Features:\n AUTH TLS\n123 starts with digits\nEnd");
    CHECK_STR(b.data, "211-Features:\r\n AUTH TLS\r\n 123 starts with digits\r\n211 End\r\n");
    sbuf_reset(&b);
    reply_dashed(&b, 530, "pam says\nLogin incorrect.");
    CHECK_STR(b.data, "530-pam says\r\n530 Login incorrect.\r\n");
    sbuf_reset(&b);
    reply_one(&b, 257, "\"/a\xff\" cr\rx");
    CHECK(b.len == strlen("257 \"/a\xff\xff\" cr\r") + 1 + strlen("x\r\n"));
    CHECK(memcmp(b.data, "257 \"/a\xff\xff\" cr\r\0x\r\n", b.len) == 0);
    sbuf_reset(&b);
    reply_quote_path(&b, "/a\"b");
    CHECK_STR(b.data, "\"/a\"\"b\"");
    /* Truncating keeps the prefix and the terminator; a longer length changes nothing. */
    sbuf_truncate(&b, 3);
    CHECK(b.len == 3);
    CHECK_STR(b.data, "\"/a");
    sbuf_truncate(&b, 10);
    CHECK_STR(b.data, "\"/a");
    sbuf_free(&b);
    sbuf_truncate(&b, 0); /* an empty buffer has no data yet */

    /* Log text: valid UTF-8 stays; C0, DEL, C1 (as UTF-8 or as raw 8-bit bytes), bidi
     * overrides, invalid or overlong sequences and surrogates each become one '?'. */
    {
        char t[128];
        snprintf(t, sizeof t, "%s", "Jos\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 ok");
        text_sanitize(t, '?');
        CHECK_STR(t, "Jos\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 ok");
        snprintf(t, sizeof t, "%s", "a\rb\x1b[2Jc\x7f");
        text_sanitize(t, '?');
        CHECK_STR(t, "a?b?[2Jc?");
        snprintf(t, sizeof t, "%s",
                 "x\x9b"
                 "2J|\xc2\x9b|\xe2\x80\xae"
                 "evil|\xe2\x81\xa6|\xc3\x28|");
        text_sanitize(t, '?');
        CHECK_STR(t, "x?2J|?|?evil|?|?(|");
        snprintf(t, sizeof t, "%s", "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xe2\x82");
        text_sanitize(t, '_');
        CHECK_STR(t, "__|___|____|__");
    }

    /* Telnet: IAC IAC is 0xFF; IP/DM and option requests vanish; CR NUL is CR. */
    CHECK_STR(telnet("\xff\xf4\xff\xf2"
                     "ABOR",
                     8),
              "ABOR");
    CHECK_STR(telnet("RETR a\xff\xff"
                     "b",
                     9),
              "RETR a\xff"
              "b");
    CHECK_STR(telnet("\xff\xfb\x01NOOP", 7), "NOOP");
    {
        const char in[] = "MKD a\r\0b";
        char out[16];
        size_t n = telnet_unescape((const unsigned char *)in, sizeof in - 1, out);
        CHECK(n == 7 && memcmp(out, "MKD a\rb", 7) == 0);
    }

    bool cr = false;
    CHECK_STR(to_net("a\nb\r\nc\n", &cr), "a\r\nb\r\nc\r\n");
    cr = false;
    CHECK_STR(to_net("x\r", &cr), "x\r");
    CHECK_STR(to_net("\ny", &cr), "\ny"); /* CR at the end of the previous chunk */
    cr = false;
    CHECK_STR(from_net("a\r\nb\rc\r", &cr), "a\nb\rc");
    CHECK(cr);
    CHECK_STR(from_net("\nd", &cr), "\nd");
    cr = true;
    char fl[2];
    CHECK(ascii_from_net_flush(fl, &cr) == 1 && fl[0] == '\r');

    /* LIST line layout clients parse. */
    struct listent e = {.name = "file.txt"};
    e.st.st_mode = S_IFREG | 0644;
    e.st.st_nlink = 1;
    e.st.st_uid = 1000;
    e.st.st_gid = 1000;
    e.st.st_size = 1234;
    e.st.st_mtime = 1700000000; /* 2023-11-14 22:13:20 UTC */
    struct idname users[] = {{1000, "alice"}};
    struct idmap ids = {.users = users, .nusers = 1};
    sbuf_init(&b);
    list_format_ls(&b, &e, &ids, 1700000000 + 3600);
    CHECK_STR(b.data, "-rw-r--r--    1 alice    1000         1234 Nov 14 22:13 file.txt\r\n");
    sbuf_reset(&b);
    list_format_ls(&b, &e, &ids, 1700000000 + 400 * 86400);
    CHECK_STR(b.data, "-rw-r--r--    1 alice    1000         1234 Nov 14  2023 file.txt\r\n");
    sbuf_reset(&b);
    /* A group name with a CR LF from a directory service: the number, the line stays whole. */
    struct idname groups[] = {{1000, "staff\r\n226 x"}};
    ids.groups = groups;
    ids.ngroups = 1;
    list_format_ls(&b, &e, &ids, 1700000000 + 3600);
    CHECK_STR(b.data, "-rw-r--r--    1 alice    1000         1234 Nov 14 22:13 file.txt\r\n");
    snprintf(groups[0].name, sizeof groups[0].name, "Domain Users");
    sbuf_reset(&b);
    list_format_ls(&b, &e, &ids, 1700000000 + 3600);
    CHECK_STR(b.data, "-rw-r--r--    1 alice    Domain Users     1234 Nov 14 22:13 file.txt\r\n");
    ids.groups = NULL;
    ids.ngroups = 0;
    sbuf_reset(&b);
    e.st.st_mode = S_IFLNK | 0777;
    e.target = "/etc";
    list_format_ls(&b, &e, NULL, 1700000000);
    CHECK(strstr(b.data, "lrwxrwxrwx") == b.data && strstr(b.data, "file.txt -> /etc\r\n"));
    sbuf_reset(&b);
    e.st.st_mode = S_IFREG | 04755;
    e.target = NULL;
    list_format_mlsx(&b, &e, FACT_TYPE | FACT_SIZE | FACT_MODIFY | FACT_PERM | FACT_UNIX_MODE, NULL,
                     "adfrw", NULL);
    CHECK_STR(b.data, "type=file;size=1234;modify=20231114221320;perm=adfrw;unix.mode=04755; "
                      "file.txt\r\n");
    sbuf_free(&b);

    unsigned facts = 0;
    CHECK(mlst_parse_facts("Type;SIZE;bogus;", &facts) == 0 && facts == (FACT_TYPE | FACT_SIZE));
    CHECK(mlst_parse_facts("", &facts) == 0 && facts == 0);
    CHECK(mlst_parse_facts("type;;size", &facts) < 0);
    CHECK(mlst_parse_facts("type size;", &facts) < 0);
    sbuf_init(&b);
    mlst_feat_line(&b, FACT_TYPE | FACT_SIZE);
    CHECK(strncmp(b.data, "type*;size*;modify;", 19) == 0);
    sbuf_free(&b);

    /* Message framing: fields round-trip; a short or overlong string is refused. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
    struct msg *m = msg_new();
    msg_init(m, MSG_LOGIN);
    msg_put_str(m, "alice");
    msg_put_str(m, "secret");
    msg_put_u64(m, 1ull << 40);
    CHECK(msg_send(sv[0], m) == 0);
    struct msg *r = msg_new();
    CHECK(msg_recv(sv[1], r) == 0 && r->type == MSG_LOGIN);
    char s1[16], s2[4];
    msg_get_str(r, s1, sizeof s1);
    CHECK_STR(s1, "alice");
    msg_get_str(r, s2, sizeof s2); /* "secret" does not fit in 4 bytes */
    CHECK(r->bad);
    msg_init(m, 7);
    msg_put_u32(m, 5);
    CHECK(msg_send(sv[0], m) == 0);
    CHECK(msg_recv(sv[1], r) == 0);
    msg_get_u32(r);
    msg_get_u32(r); /* past the end */
    CHECK(!msg_ok_end(r));
    msg_free(m);
    msg_free(r);
    close(sv[0]);
    close(sv[1]);

    uint64_t v;
    CHECK(parse_u64("18446744073709551615", UINT64_MAX, &v) && v == UINT64_MAX);
    CHECK(!parse_u64("18446744073709551616", UINT64_MAX, &v));
    CHECK(!parse_u64("-1", UINT64_MAX, &v) && !parse_u64("", 10, &v) && !parse_u64("1 ", 10, &v));
    /* A max below 9: "5" and "15" are over 3 (max - d used to wrap and let them through). */
    unsigned u;
    CHECK(!parse_u64("5", 3, &v) && !parse_u64("15", 3, &v) && !parse_uint("9", 0, &u));
    CHECK(parse_u64("3", 3, &v) && v == 3 && parse_uint("0", 0, &u) && u == 0);
    return unit_done("text");
}
