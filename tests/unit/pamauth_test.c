/* pamauth's conversation, driven through pamauth_login by a stand-in libpam: the pam_*
 * functions defined here take precedence over the library's for this program only. */
#include "pamauth.h"

#include <stdio.h>
#include <string.h>

#include "unit.h"

static struct pam_conv saved_conv;
static int conv_rc = -1;
static char handle;

int pam_start(const char *service_name, const char *user, const struct pam_conv *pam_conversation,
              pam_handle_t **pamh)
{
    (void)service_name;
    (void)user;
    saved_conv = *pam_conversation;
    *pamh = (pam_handle_t *)&handle;
    return PAM_SUCCESS;
}

int pam_set_item(pam_handle_t *pamh, int item_type, const void *item)
{
    (void)pamh;
    (void)item_type;
    (void)item;
    return PAM_SUCCESS;
}

int pam_putenv(pam_handle_t *pamh, const char *name_value)
{
    (void)pamh;
    (void)name_value;
    return PAM_SUCCESS;
}

/* A module that prompts for the password and the login but gives no place for the answers. */
int pam_authenticate(pam_handle_t *pamh, int flags)
{
    (void)pamh;
    (void)flags;
    const struct pam_message m0 = {PAM_PROMPT_ECHO_OFF, "Password: "};
    const struct pam_message m1 = {PAM_PROMPT_ECHO_ON, "Login: "};
    const struct pam_message *msgs[2] = {&m0, &m1};
    conv_rc = saved_conv.conv(2, msgs, NULL, saved_conv.appdata_ptr);
    return PAM_AUTH_ERR;
}

const char *pam_strerror(pam_handle_t *pamh, int errnum)
{
    (void)pamh;
    (void)errnum;
    return "stub";
}

int pam_end(pam_handle_t *pamh, int pam_status)
{
    (void)pamh;
    (void)pam_status;
    return PAM_SUCCESS;
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* Whether the secret is anywhere in the heap (the brk heap and anonymous writable mappings).
 * Under AddressSanitizer those include its shadow memory, which must not be read: the scan is
 * skipped there, and LeakSanitizer reports copies left unfreed (wiped and freed go together). */
static bool secret_in_heap(const char *secret)
{
#ifdef UNDER_ASAN
    (void)secret;
    return false;
#else
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    size_t n = strlen(secret);
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        int off = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s%n", &lo, &hi, perms, &off) < 3)
            continue;
        const char *name = line + off;
        while (*name == ' ')
            name++;
        bool anon = *name == '\n' || strncmp(name, "[heap]", 6) == 0;
        if (!anon || perms[0] != 'r' || perms[1] != 'w')
            continue;
        found = memmem((const void *)lo, hi - lo, secret, n) != NULL;
    }
    fclose(f);
    return found;
#endif
}

int main(void)
{
    /* Built on the stack, not a literal: pamauth's copies are the only ones in the heap. */
    char secret[32];
    for (size_t i = 0; i < 20; i++)
        secret[i] = (char)('a' + (i * 7) % 26);
    secret[20] = '\0';
    CHECK(!secret_in_heap(secret));

    struct pamauth pa;
    struct sbuf msgs;
    sbuf_init(&msgs);
    char why[256];
    enum pam_outcome out =
        pamauth_login(&pa, "ftpsd", "alice", secret, "192.0.2.1", NULL, &msgs, why, sizeof why);
    CHECK(out == PAMAUTH_BAD_LOGIN);
    CHECK(conv_rc == PAM_SUCCESS);
    /* The answers had nowhere to go: the copy of the password must not stay behind. */
    CHECK(!secret_in_heap(secret));
    sbuf_free(&msgs);
    return unit_done("pamauth");
}
