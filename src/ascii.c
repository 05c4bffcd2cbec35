#include "ascii.h"

size_t ascii_to_net(const char *in, size_t n, char *out, bool *prev_cr)
{
    size_t o = 0;
    bool cr = *prev_cr;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '\n' && !cr)
            out[o++] = '\r';
        out[o++] = c;
        cr = c == '\r';
    }
    *prev_cr = cr;
    return o;
}

size_t ascii_from_net(const char *in, size_t n, char *out, bool *pending_cr)
{
    size_t o = 0;
    bool cr = *pending_cr;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (cr) {
            cr = false;
            if (c == '\n') {
                out[o++] = '\n';
                continue;
            }
            out[o++] = '\r';
        }
        if (c == '\r')
            cr = true;
        else
            out[o++] = c;
    }
    *pending_cr = cr;
    return o;
}

size_t ascii_from_net_flush(char *out, bool *pending_cr)
{
    if (!*pending_cr)
        return 0;
    *pending_cr = false;
    out[0] = '\r';
    return 1;
}
