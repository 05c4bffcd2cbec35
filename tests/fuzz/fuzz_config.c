/*
 * ftpsd.conf parsing: config_defaults, config_parse_text, config_override ("-o key=value"),
 * config_validate, the per-vhost lookups, config_free. Leaks show up through ASan's leak check
 * (libFuzzer runs it on every input that allocates more than it frees).
 *
 * Input: the configuration text, then optionally a NUL and "-o" assignments separated by NUL
 * bytes (a file cannot hold NUL: config_load refuses it).
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

#include "fuzz.h"

static void check_strings(const struct config *c)
{
    /* Every string key is set (defaults included) and every path key is absolute or empty. */
    const char *paths[] = {c->tls_cert_file, c->tls_key_file, c->anon_root, c->empty_dir};
    for (size_t i = 0; i < ARRAY_LEN(paths); i++)
        FUZZ_ASSERT(paths[i] && paths[i][0] == '/');
    const char *opt[] = {c->tls_ca_file,   c->tls_ca_path, c->tls_crl_file, c->tls_ocsp_file,
                         c->cert_map_file, c->root_dir,    c->xferlog_file};
    for (size_t i = 0; i < ARRAY_LEN(opt); i++)
        FUZZ_ASSERT(opt[i] && (opt[i][0] == '\0' || opt[i][0] == '/'));
    FUZZ_ASSERT(c->tls_ciphers && c->tls_ciphersuites && c->tls_client_cert && c->tls_groups &&
                c->cert_login && c->anon_user && c->guest_user && c->pam_service &&
                c->nopriv_user && c->pasv_address && c->proxy_trusted && c->banner);
    FUZZ_ASSERT(c->pasv_min_port >= 1024 && c->pasv_min_port <= 65535);
    FUZZ_ASSERT(c->pasv_max_port >= 1024 && c->pasv_max_port <= 65535);
    FUZZ_ASSERT(c->max_line_length >= 512 && c->max_line_length <= 65536);
    FUZZ_ASSERT(c->umask <= 0777);
    FUZZ_ASSERT(c->nvhosts <= MAX_VHOSTS);
    for (unsigned i = 0; i < c->nvhosts; i++) {
        const struct vhost *v = &c->vhosts[i];
        FUZZ_ASSERT(v->name && v->name[0] && strlen(v->name) <= 253);
        for (const char *p = v->name; *p; p++)
            FUZZ_ASSERT((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                        *p == '.');
        FUZZ_ASSERT(config_find_vhost(c, v->name) == v);
        for (unsigned j = 0; j < i; j++)
            FUZZ_ASSERT(strcmp(c->vhosts[j].name, v->name) != 0);
        FUZZ_ASSERT(!v->tls_cert_file || v->tls_cert_file[0] == '/');
        FUZZ_ASSERT(!v->tls_key_file || v->tls_key_file[0] == '/');
        FUZZ_ASSERT(!v->root_dir || v->root_dir[0] == '\0' || v->root_dir[0] == '/');
    }
    for (unsigned v = 0; v <= c->nvhosts + 1; v++) {
        FUZZ_ASSERT(config_cert(c, v) && config_key(c, v) && config_root_dir(c, v) &&
                    config_banner(c, v) && config_pam_service(c, v));
    }
    (void)config_client_cert(c);
    (void)config_cert_login(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fin in = {data, size};
    size_t n;
    const uint8_t *p = fin_field(&in, &n);
    char *text = fuzz_strndup(p, n);

    struct config c;
    config_defaults(&c);
    check_strings(&c);
    int rc = config_parse_text(&c, "fuzz.conf", text, fuzz_errfn);
    check_strings(&c);
    int overrides = 0;
    while (in.n > 0 && overrides++ < 16) {
        p = fin_field(&in, &n);
        char *o = fuzz_strndup(p, n);
        int orc = config_override(&c, o, fuzz_errfn);
        FUZZ_ASSERT(orc == 0 || orc == -1);
        free(o);
        check_strings(&c);
    }
    int vrc = config_validate(&c, fuzz_errfn);
    FUZZ_ASSERT(rc == 0 || rc == -1);
    FUZZ_ASSERT(vrc == 0 || vrc == -1);
    if (vrc == 0) {
        FUZZ_ASSERT(c.pasv_min_port <= c.pasv_max_port);
        FUZZ_ASSERT(strlen(c.banner) <= 400 && !strpbrk(c.banner, "\r\n"));
    }
    config_free(&c);
    FUZZ_ASSERT(c.vhosts == NULL && c.nvhosts == 0 && c.banner == NULL);
    free(text);
    return 0;
}
