#include "certmap.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "unit.h"
#include "util.h"

static char errs[32][1300];
static int nerr;
static void err(const char *m)
{
    if (nerr < 32)
        snprintf(errs[nerr], sizeof errs[nerr], "%s", m);
    nerr++;
}

static struct certmap *parse(const char *text)
{
    nerr = 0;
    memset(errs, 0, sizeof errs);
    return certmap_parse(text, "t.map", err);
}

static char user[256];
static unsigned line;

/* The user name the map gives a certificate with this subject and issuer, or "(none)". */
static const char *by_subject(const struct certmap *m, const char *subject, const char *issuer)
{
    struct cert_ids ids = {.subject = subject, .issuer = issuer};
    line = certmap_lookup(m, &ids, user, sizeof user);
    return line ? user : "(none)";
}

static const char *by_email(const struct certmap *m, const char *const *emails, size_t n)
{
    struct cert_ids ids = {.emails = emails, .nemails = n};
    line = certmap_lookup(m, &ids, user, sizeof user);
    return line ? user : "(none)";
}

static const char *by_upn(const struct certmap *m, const char *upn)
{
    struct cert_ids ids = {.upns = &upn, .nupns = 1};
    line = certmap_lookup(m, &ids, user, sizeof user);
    return line ? user : "(none)";
}

#define STUDENT(cn) "CN=" cn ",OU=Students,O=Example University,C=US"

int main(void)
{
    struct certmap *m;

    /* Exact subject. */
    m = parse("subject \"CN=Alice Smith,OU=Staff,O=Example University,C=US\" asmith\n");
    CHECK(m != NULL && nerr == 0 && certmap_rule_count(m) == 1);
    CHECK_STR(by_subject(m, "CN=Alice Smith,OU=Staff,O=Example University,C=US", NULL), "asmith");
    CHECK(line == 1);
    CHECK_STR(by_subject(m, "CN=Alice Smith,OU=Staff,O=Example University", NULL), "(none)");
    CHECK_STR(by_subject(m, "cn=alice smith,ou=staff,o=example university,c=us", NULL), "(none)");
    certmap_free(m);

    /* Regex capture, anchored at both ends. */
    m = parse("subject /CN=([a-z0-9]+),OU=Students,O=Example University,C=US/ \\1\n");
    CHECK(m != NULL && nerr == 0);
    CHECK_STR(by_subject(m, STUDENT("bob42"), NULL), "bob42");
    CHECK_STR(by_subject(m, "X" STUDENT("bob42"), NULL), "(none)");
    CHECK_STR(by_subject(m, STUDENT("bob42") ",DC=evil", NULL), "(none)");
    CHECK_STR(by_subject(m, "CN=evil,CN=bob42,OU=Students,O=Example University,C=US", NULL),
              "(none)");
    CHECK_STR(by_subject(m, STUDENT("Bob"), NULL), "(none)");
    certmap_free(m);
    m = parse("subject /CN=bob/ bob\n");
    CHECK_STR(by_subject(m, "CN=bob", NULL), "bob");
    CHECK_STR(by_subject(m, STUDENT("bob"), NULL), "(none)");
    CHECK_STR(by_subject(m, "CN=bobby", NULL), "(none)");
    certmap_free(m);
    /* A top-level alternative is anchored too, and explicit anchors are harmless. */
    m = parse("subject /CN=a|CN=b/ ab\nsubject /^CN=c$/ c\n");
    CHECK_STR(by_subject(m, "CN=b", NULL), "ab");
    CHECK_STR(by_subject(m, "CN=a,O=x", NULL), "(none)");
    CHECK_STR(by_subject(m, "O=x,CN=b", NULL), "(none)");
    CHECK_STR(by_subject(m, "CN=c", NULL), "c");
    certmap_free(m);
    /* The regex's own back-references still mean its own groups. */
    m = parse("subject /CN=([a-z]+)-\\1/ \\1\n");
    CHECK(m != NULL);
    CHECK_STR(by_subject(m, "CN=ab-ab", NULL), "ab");
    CHECK_STR(by_subject(m, "CN=ab-cd", NULL), "(none)");
    CHECK_STR(by_subject(m, "CN=ab-CN=ab-ab", NULL), "(none)");
    certmap_free(m);
    /* An unmatched ')' (a literal for glibc) would close the anchoring group. */
    m = parse("subject /CN=a)|(.*)/ x\n");
    CHECK(m == NULL && nerr == 1);
    CHECK(strstr(errs[0], "t.map:1: unmatched ')'") == errs[0]);
    /* Adjacent repetition operators: undefined in POSIX, exponential in glibc's regcomp. */
    m = parse("email /[)(]****************************************************x/ u\n"
              "subject /CN=a+?/ u\nsubject /CN=a{2}*/ u\n");
    CHECK(m == NULL && nerr == 3);
    CHECK(strstr(errs[0], "t.map:1: adjacent repetition operators in the regex ('*' after") ==
          errs[0]);
    CHECK(strstr(errs[1], "t.map:2: adjacent repetition operators in the regex ('?' after") ==
          errs[1]);
    CHECK(strstr(errs[2], "t.map:3: adjacent repetition operators in the regex ('*' after") ==
          errs[2]);
    m = parse("subject /CN=a*,O=x}*,OU=[*+]+\\*+b{1,2}c/ u\n");
    CHECK(m != NULL);
    CHECK_STR(by_subject(m, "CN=aa,O=x}},OU=*+*b", NULL), "(none)");
    CHECK_STR(by_subject(m, "CN=aa,O=x}},OU=*+**bc", NULL), "u");
    certmap_free(m);
    m = parse("subject /CN=a\\)|CN=(b)/ x\\1\nsubject /[)(]x/ y\n");
    CHECK(m != NULL);
    CHECK_STR(by_subject(m, "CN=a)", NULL), "x");
    CHECK_STR(by_subject(m, "CN=b", NULL), "xb");
    CHECK_STR(by_subject(m, ")x", NULL), "y");
    certmap_free(m);

    /* Email: each SAN in turn; only the second matches. */
    m = parse("email /(.*)@students\\.example\\.edu/ \\1\n");
    CHECK(m != NULL);
    const char *emails[] = {"carol@gmail.com", "carol@students.example.edu",
                            "c2@students.example.edu"};
    CHECK_STR(by_email(m, emails, 3), "carol");
    CHECK(line == 1);
    CHECK_STR(by_email(m, emails, 1), "(none)");
    const char *sub[] = {"x@students.example.edu.evil.org", "x@studentsXexample.edu"};
    CHECK_STR(by_email(m, sub, 2), "(none)");
    certmap_free(m);

    /* UPN. */
    m = parse("upn /([a-z]+)@AD\\.EXAMPLE\\.EDU/ \\1\n");
    CHECK_STR(by_upn(m, "dave@AD.EXAMPLE.EDU"), "dave");
    CHECK_STR(by_upn(m, "dave@ad.example.edu"), "(none)");
    CHECK_STR(by_subject(m, "dave@AD.EXAMPLE.EDU", NULL), "(none)");
    certmap_free(m);

    /* Issuer: the same subject from another CA does not match. */
    m = parse("issuer \"CN=Student CA,O=Example University,C=US\" subject "
              "/CN=([a-z]+),OU=Students,O=Example University,C=US/ \\1\n");
    CHECK(m != NULL && nerr == 0);
    CHECK_STR(by_subject(m, STUDENT("erin"), "CN=Student CA,O=Example University,C=US"), "erin");
    CHECK_STR(by_subject(m, STUDENT("erin"), "CN=Evil CA,O=Example University,C=US"), "(none)");
    CHECK_STR(by_subject(m, STUDENT("erin"), "CN=student ca,O=Example University,C=US"), "(none)");
    CHECK_STR(by_subject(m, STUDENT("erin"), NULL), "(none)");
    certmap_free(m);

    /* First match wins, with its line number; comments and blank lines count as lines. */
    m = parse("# lab map\n\n   # indented comment\n\t\n"
              "subject \"" STUDENT("frank") "\" fadmin\n"
                                            "subject /CN=([a-z]+),.*/ \\1\n"
                                            "subject \"" STUDENT("frank") "\" never\n");
    CHECK(m != NULL && certmap_rule_count(m) == 3);
    CHECK_STR(by_subject(m, STUDENT("frank"), NULL), "fadmin");
    CHECK(line == 5);
    CHECK_STR(by_subject(m, STUDENT("gina"), NULL), "gina");
    CHECK(line == 6);
    certmap_free(m);

    /* Literal text and two captures. */
    m = parse("subject /CN=([a-z]+)\\.([a-z]+),.*/ s-\\1-\\2\n");
    CHECK_STR(by_subject(m, "CN=hal.jones,O=X", NULL), "s-hal-jones");
    certmap_free(m);
    /* A group that took no part in the match gives "". */
    m = parse("subject /CN=([a-z]+)(-[0-9]+)?/ u\\1\\2\n");
    CHECK_STR(by_subject(m, "CN=ivy", NULL), "uivy");
    CHECK_STR(by_subject(m, "CN=ivy-2", NULL), "uivy-2");
    certmap_free(m);

    /* Invalid resulting names: the rule does not match, later values and rules still may. */
    m = parse("email /(.*)@x\\.org/ \\1\nsubject /CN=(.*)/ \\1\nemail /.*/ fallback\n"
              "subject /.*/ fallback\n");
    CHECK(m != NULL);
    const char *slash[] = {"a/b@x.org"}, *empty[] = {"@x.org"}, *colon[] = {"a:b@x.org"},
               *dots[] = {"..@x.org"}, *ctl[] = {"a\x01@x.org"},
               *then_ok[] = {"a/b@x.org", "jo@x.org"};
    CHECK_STR(by_email(m, slash, 1), "fallback");
    CHECK(line == 3);
    CHECK_STR(by_email(m, empty, 1), "fallback");
    CHECK_STR(by_email(m, colon, 1), "fallback");
    CHECK_STR(by_email(m, dots, 1), "fallback");
    CHECK_STR(by_email(m, ctl, 1), "fallback");
    CHECK_STR(by_email(m, then_ok, 2), "jo");
    CHECK(line == 1);
    CHECK_STR(by_subject(m, "CN=a b", NULL), "fallback");
    CHECK_STR(by_subject(m, "CN=a\tb", NULL), "fallback");
    char longcn[400] = "CN=";
    memset(longcn + 3, 'a', 256);
    CHECK_STR(by_subject(m, longcn, NULL), "fallback");
    longcn[3 + 255] = '\0';
    CHECK_STR(by_subject(m, longcn, NULL), longcn + 3);
    CHECK(line == 2);
    /* Too small a buffer: no match rather than a truncated name. */
    struct cert_ids small_ids = {.subject = "CN=abcdefgh"};
    char small[8] = "zzz";
    CHECK(certmap_lookup(m, &small_ids, small, sizeof small) == 0 && small[0] == '\0');
    char fits[9];
    CHECK(certmap_lookup(m, &small_ids, fits, sizeof fits) == 2);
    CHECK_STR(fits, "abcdefgh");
    certmap_free(m);

    /* CRLF line endings, a last line without a newline. */
    m = parse("subject \"CN=j\" j\r\nsubject \"CN=k\" k");
    CHECK(m != NULL && certmap_rule_count(m) == 2);
    CHECK_STR(by_subject(m, "CN=k", NULL), "k");
    certmap_free(m);

    /* Quotes with \" and \\ (a DN's own escape doubled). */
    m = parse("subject \"CN=Doe\\\\, John \\\"JD\\\",O=Example\" jd\n"
              "issuer \"\" subject \"\" nosubject\n");
    CHECK(m != NULL && nerr == 0);
    CHECK_STR(by_subject(m, "CN=Doe\\, John \"JD\",O=Example", NULL), "jd");
    CHECK_STR(by_subject(m, "", ""), "nosubject");
    certmap_free(m);

    /* A regex with \/, and "\\/" as a backslash then the closing '/'. */
    m = parse("subject /CN=web\\/([a-z]+),O=X/ \\1\nsubject /CN=a\\\\/ backslash\n");
    CHECK(m != NULL && nerr == 0);
    CHECK_STR(by_subject(m, "CN=web/admin,O=X", NULL), "admin");
    CHECK_STR(by_subject(m, "CN=a\\", NULL), "backslash");
    certmap_free(m);

    /* Every kind of error, each with its line number, all of them reported. */
    char big[5001];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "subject \"", 9);
    memcpy(big + sizeof big - 4, "\" u", 3);
    struct sbuf t;
    sbuf_init(&t);
    sbuf_adds(&t, "subject \"CN=ok\" ok\n"                              /* 1 */
                  "bogus \"x\" a\n"                                     /* 2 */
                  "subject\n"                                           /* 3 */
                  "email \"x@y\"\n"                                     /* 4 */
                  "upn \"x\" a b\n"                                     /* 5 */
                  "subject \"CN=a a\n"                                  /* 6 */
                  "subject /CN=a a\n"                                   /* 7 */
                  "subject /CN=(a/ a\n"                                 /* 8 */
                  "subject /CN=(a)/ u\\0\n"                             /* 9 */
                  "issuer subject \"CN=a\" a\n"                         /* 10 */
                  "issuer \"CN=CA\"\n"                                  /* 11 */
                  "subject \"CN=a\" \\1\n"                              /* 12 */
                  "subject /CN=(a)/ \\2\n"                              /* 13 */
                  "subject \"a\\x\" u\n"                                /* 14 */
                  "subject CN=a u\n"                                    /* 15 */
                  "subject /a/i u\n"                                    /* 16 */
                  "subject \"a\" a/b\n"                                 /* 17 */
                  "subject /CN=(a/ u\\x\n"                              /* 18: two errors */
                  "issuer \"CN=CA\" issuer \"CN=CA\" subject \"a\" a\n" /* 19 */
                  "upn \"a\"b u\n"                                      /* 20 */
                  "email /x/ \"alice\"\n"                               /* 21 */
                  "subject /(a)(b)(c)(d)(e)(f)(g)(h)(i)\\9/ a\n");      /* 22 */
    sbuf_adds(&t, big);                                                 /* 23 */
    sbuf_adds(&t, "\nsubject \"CN=ok2\" ok2\n");
    m = parse(t.data);
    CHECK(m == NULL);
    CHECK(nerr == 23);
    CHECK_STR(errs[0], "t.map:2: unknown kind 'bogus' (expected subject, email or upn)");
    CHECK_STR(errs[1], "t.map:3: missing pattern and user name");
    CHECK_STR(errs[2], "t.map:4: missing user name");
    CHECK_STR(errs[3], "t.map:5: extra field after the user name");
    CHECK_STR(errs[4], "t.map:6: unterminated quoted string");
    CHECK_STR(errs[5], "t.map:7: unterminated regex (a '/' inside it is written \\/)");
    CHECK(strncmp(errs[6], "t.map:8: regex does not compile: ", 33) == 0 && strlen(errs[6]) > 33);
    CHECK_STR(errs[7], "t.map:9: in the user name, a backslash must be followed by a digit 1 to 9");
    CHECK_STR(errs[8], "t.map:10: issuer must be followed by a quoted DN");
    CHECK_STR(errs[9], "t.map:11: missing kind (subject, email or upn) after the issuer");
    CHECK_STR(errs[10], "t.map:12: \\1 in the user name needs a /regex/ pattern");
    CHECK_STR(errs[11], "t.map:13: the user name uses \\2 but the regex has 1 group");
    CHECK_STR(errs[12], "t.map:14: in a quoted string, a backslash must be followed by \" or \\");
    CHECK_STR(errs[13], "t.map:15: the pattern must be \"string\" or /regex/");
    CHECK_STR(errs[14],
              "t.map:16: a blank must follow the regex's closing '/' (there are no flags)");
    CHECK_STR(errs[15], "t.map:17: the user name must not contain '/', ':' or control characters");
    CHECK(strncmp(errs[16], "t.map:18: regex does not compile: ", 34) == 0);
    CHECK_STR(errs[17],
              "t.map:18: in the user name, a backslash must be followed by a digit 1 to 9");
    CHECK_STR(errs[18], "t.map:19: unknown kind 'issuer' (expected subject, email or upn)");
    CHECK_STR(errs[19], "t.map:20: a blank must follow the closing quote");
    CHECK_STR(errs[20], "t.map:21: the user name is written without quotes");
    CHECK_STR(errs[21], "t.map:22: \\9 cannot be used inside a regex (at most \\8)");
    CHECK_STR(errs[22], "t.map:23: line is longer than 4096 bytes");
    sbuf_free(&t);
    /* Without errfn the errors still make it fail. */
    CHECK(certmap_parse("bogus \"x\" a\n", "t.map", NULL) == NULL);
    /* A user name that can never be valid. */
    m = parse("subject \"a\" ..\nsubject \"b\" u:x\n");
    CHECK(m == NULL && nerr == 2);
    CHECK_STR(errs[0], "t.map:1: '..' is not a valid user name");

    /* A line of exactly 4096 bytes is fine. */
    char edge[4097];
    memset(edge, 'a', sizeof edge - 1);
    edge[sizeof edge - 1] = '\0';
    memcpy(edge, "subject \"", 9);
    memcpy(edge + sizeof edge - 4, "\" u", 3);
    CHECK(strlen(edge) == 4096);
    m = parse(edge);
    CHECK(m != NULL && nerr == 0 && certmap_rule_count(m) == 1);
    certmap_free(m);

    /* NULL and empty inputs. */
    m = parse("");
    CHECK(m != NULL && certmap_rule_count(m) == 0);
    certmap_free(m);
    m = certmap_parse(NULL, NULL, NULL);
    CHECK(m != NULL && certmap_rule_count(m) == 0);
    certmap_free(m);
    m = parse("# only a comment\n\n");
    CHECK(m != NULL && certmap_rule_count(m) == 0);
    certmap_free(m);
    m = parse("subject /.*/ any\nemail /.*/ e\nupn /.*/ u\n");
    struct cert_ids none = {0};
    CHECK(certmap_lookup(m, &none, user, sizeof user) == 0 && user[0] == '\0');
    const char *nulls[] = {NULL, NULL};
    struct cert_ids holes = {.emails = nulls, .nemails = 2, .upns = nulls, .nupns = 2};
    CHECK(certmap_lookup(m, &holes, user, sizeof user) == 0);
    struct cert_ids counted = {.nemails = 3, .nupns = 3}; /* counts without arrays */
    CHECK(certmap_lookup(m, &counted, user, sizeof user) == 0);
    CHECK(certmap_lookup(m, NULL, user, sizeof user) == 0);
    CHECK(certmap_lookup(NULL, &none, user, sizeof user) == 0);
    CHECK(certmap_lookup(m, &none, NULL, 0) == 0);
    CHECK(certmap_rule_count(NULL) == 0);
    certmap_free(m);
    certmap_free(NULL);

    /* Files. */
    nerr = 0;
    CHECK(certmap_load("/nonexistent/ftpsd-certmap", err) == NULL);
    CHECK(nerr == 1 && strstr(errs[0], "/nonexistent/ftpsd-certmap: cannot open") == errs[0]);
    char path[] = "/tmp/certmap_testXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        const char *text = "# map\nsubject \"CN=lee\" lee\nbad\n";
        CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
        close(fd);
        nerr = 0;
        CHECK(certmap_load(path, err) == NULL && nerr == 1);
        char want[100];
        snprintf(want, sizeof want, "%s:3: unknown kind 'bad' (expected subject, email or upn)",
                 path);
        CHECK_STR(errs[0], want);
        /* The same file without its bad last line. */
        size_t good = (size_t)(strstr(text, "bad") - text);
        fd = open(path, O_WRONLY | O_TRUNC);
        CHECK(fd >= 0 && write(fd, text, good) == (ssize_t)good);
        close(fd);
        nerr = 0;
        m = certmap_load(path, err);
        CHECK(m != NULL && nerr == 0 && certmap_rule_count(m) == 1);
        CHECK_STR(by_subject(m, "CN=lee", NULL), "lee");
        CHECK(line == 2);
        certmap_free(m);
        unlink(path);
    }
    return unit_done("certmap");
}
