#include "config.h"

#include <openssl/ssl.h>
#include <syslog.h>

#include "unit.h"

static char last_err[1024];
static int nerr;
static void err(const char *m)
{
    snprintf(last_err, sizeof last_err, "%s", m);
    nerr++;
}

static int parse(struct config *c, const char *text)
{
    nerr = 0;
    last_err[0] = '\0';
    config_defaults(c);
    int rc = config_parse_text(c, "t.conf", text, err);
    if (rc == 0)
        rc = config_validate(c, err);
    return rc;
}

int main(void)
{
    struct config c;

    /* Defaults are the safe ones. */
    config_defaults(&c);
    CHECK(c.require_tls_login && c.require_prot_p && c.require_session_reuse);
    CHECK(c.tls_min_version == TLS1_2_VERSION);
    CHECK(!c.implicit_tls && c.chroot && !c.write_enable);
    CHECK(c.umask == 022 && c.max_login_failures == 3 && c.max_line_length == 4096);
    config_free(&c);

    CHECK(
        parse(&c, "# comment\n\n  write_enable = yes\numask=077\nbanner = Hi # not a comment\n") ==
        0);
    CHECK(c.write_enable && c.umask == 077);
    CHECK_STR(c.banner, "Hi # not a comment");
    CHECK(config_line(&c, "umask") == 4);
    config_free(&c);

    CHECK(parse(&c, "tls_min_version = 1.3\nlog_level = debug\nlog_facility = local3\n") == 0);
    CHECK(c.tls_min_version == TLS1_3_VERSION && c.log_level == LOG_DEBUG &&
          c.log_facility == LOG_LOCAL3);
    config_free(&c);

    /* Errors name the file and line. */
    CHECK(parse(&c, "\nbogus_key = 1\n") < 0);
    CHECK_STR(last_err, "t.conf:2: unknown key 'bogus_key'");
    config_free(&c);
    CHECK(parse(&c, "write_enable = maybe\n") < 0);
    CHECK_STR(last_err, "t.conf:1: write_enable: 'maybe' must be yes or no");
    config_free(&c);
    CHECK(parse(&c, "idle_timeout = 0\n") < 0);
    CHECK(strstr(last_err, "t.conf:1: idle_timeout") != NULL);
    config_free(&c);
    CHECK(parse(&c, "idle_timeout = 12abc\n") < 0);
    config_free(&c);
    CHECK(parse(&c, "tls_min_version = 1.1\n") < 0);
    CHECK(strstr(last_err, "RFC 8996") != NULL);
    config_free(&c);
    CHECK(parse(&c, "just words\n") < 0);
    CHECK_STR(last_err, "t.conf:1: expected 'key = value'");
    config_free(&c);
    CHECK(parse(&c, "umask = 0999\n") < 0);
    config_free(&c);
    CHECK(parse(&c, "tls_cert_file = relative.pem\n") < 0);
    config_free(&c);
    CHECK(parse(&c, "umask = 022\numask = 027\n") < 0);
    CHECK_STR(last_err, "t.conf:2: 'umask' is already set on line 1");
    config_free(&c);
    /* A line whose value is refused still sets the key: its repetition is reported at once,
     * not after the first is fixed. */
    CHECK(parse(&c, "umask = 0999\numask = 027\n") < 0);
    CHECK_STR(last_err, "t.conf:2: 'umask' is already set on line 1");
    config_free(&c);
    CHECK(parse(&c, "[user alice]\nmax_rate = fast\nmax_rate = 5\n") < 0);
    CHECK_STR(last_err, "t.conf:3: 'max_rate' is already set in [user alice] on line 2");
    config_free(&c);
    /* Section keywords are whole words; an account section's root_dir is checked as the
     * main one is. */
    CHECK(parse(&c, "[h example.com]\n") < 0);
    CHECK(strstr(last_err, "unknown section '[h example.com]'") != NULL);
    config_free(&c);
    CHECK(parse(&c, "[us alice]\nwrite_enable = yes\n") < 0);
    CHECK(strstr(last_err, "unknown section") != NULL);
    config_free(&c);
    CHECK(parse(&c, "[gr staff]\n") < 0);
    config_free(&c);
    CHECK(parse(&c, "[groups staff]\n") < 0);
    config_free(&c);
    CHECK(parse(&c, "[user alice]\nwrite_enable = yes\n[group staff]\nmax_rate = 5\n") == 0);
    CHECK(c.naccts == 2 && !c.accts[0].group && c.accts[1].group);
    config_free(&c);
    CHECK(parse(&c, "[user alice]\nroot_dir = /srv/../etc\n") < 0);
    CHECK_STR(last_err, "t.conf:2: [user alice]: root_dir must not contain '..'");
    config_free(&c);
    CHECK(parse(&c, "[group staff]\n\nroot_dir = /srv/%g\n") < 0);
    CHECK_STR(last_err,
              "t.conf:3: [group staff]: root_dir may have only %u (user name) and %% after a %");
    config_free(&c);
    CHECK(parse(&c, "pasv_min_port = 6000\npasv_max_port = 5000\n") < 0);
    CHECK(strstr(last_err, "t.conf:2: pasv_max_port") != NULL);
    config_free(&c);
    CHECK(parse(&c, "pasv_min_port = 80\n") < 0);
    config_free(&c);
    CHECK(parse(&c, "pasv_address = 10.0.0.300\n") < 0);
    config_free(&c);
    CHECK(parse(&c, "pasv_address = 192.0.2.7\n") == 0);
    config_free(&c);
    CHECK(parse(&c, "pasv_address = 10.0.0.0/8=10.1.1.5, ftp.example.org\n") == 0);
    config_free(&c);
    CHECK(parse(&c, "pasv_address = 10.0.0.0/33=10.1.1.5\n") < 0);
    config_free(&c);
    CHECK(parse(&c, "proxy_protocol = v2\n") < 0); /* needs proxy_trusted */
    config_free(&c);
    CHECK(parse(&c, "proxy_protocol = any\nproxy_trusted = 127.0.0.0/8, ::1\n") == 0);
    config_free(&c);
    CHECK(parse(&c, "proxy_trusted = 10.0.0.0/8 bogus\n") < 0);
    CHECK(strstr(last_err, "'bogus'") != NULL);
    config_free(&c);
    CHECK(parse(&c, "root_dir = /srv/ftp/%u\n") == 0);
    CHECK_STR(c.root_dir, "/srv/ftp/%u");
    config_free(&c);
    CHECK(parse(&c, "root_dir = /srv/%x\n") < 0);
    config_free(&c);
    CHECK(parse(&c, "max_line_length = 100\n") < 0);
    config_free(&c);
    /* Several errors are all reported. */
    CHECK(parse(&c, "a = 1\nb = 2\n") < 0 && nerr == 2);
    config_free(&c);

    const char *const *names = config_key_names();
    int n = 0;
    while (names[n])
        n++;
    CHECK(n >= 29);
    return unit_done("config");
}
