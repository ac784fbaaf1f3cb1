/*
 * c-upper: a hotswap plugin written in C, with no libc. It replies with
 * `C: ` followed by the input, ASCII letters uppercased. It shows that the
 * ABI assumes nothing about the source language: hotswap.h provides the
 * manifest, the export and import attributes, the packed return value and a
 * bump allocator for hs_alloc. Build it as README.md says.
 */
#define HOTSWAP_BUMP_ALLOCATOR
#include "hotswap.h"

HOTSWAP_MANIFEST("c-upper", "1.0.0");

static const char prefix[] = "C: ";
static const char oom[] = "c-upper: out of memory";

int64_t hs_process(unsigned char *input, size_t len) {
    size_t n = sizeof prefix - 1;
    /* The output lives until the next call (the allocator's rule). */
    unsigned char *out = hotswap_alloc(n + len);
    if (!out)
        return hotswap_pack(oom, sizeof oom - 1, 1);
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)prefix[i];
    for (size_t i = 0; i < len; i++) {
        unsigned char c = input[i];
        out[n + i] = (c >= 'a' && c <= 'z') ? (unsigned char)(c - 'a' + 'A') : c;
    }
    return hotswap_pack(out, n + len, 0);
}
