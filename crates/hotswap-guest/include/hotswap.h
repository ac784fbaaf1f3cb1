/*
 * hotswap.h: the plugin ABI v1 for C. docs/abi.md is the contract; where
 * this file disagrees with it, this file is wrong. Its names, numbers and
 * signatures are checked against crates/hotswap-abi by
 * crates/hotswap-guest/tests/c_header.rs.
 *
 * A plugin is a core wasm32 module with no libc. Build one with
 *
 *   clang --target=wasm32-unknown-unknown -O2 -nostdlib -Wl,--no-entry \
 *         -I crates/hotswap-guest/include -o plugin.wasm plugin.c
 *
 * (wasm-ld exports `memory` by default, and every function declared below
 * with HOTSWAP_EXPORT is exported under its ABI name.)
 *
 * The plugin defines, in one .c file:
 *
 *   HOTSWAP_MANIFEST("name", "1.0.0");              the manifest, at file scope
 *   void   *hs_alloc(size_t len);                   or HOTSWAP_BUMP_ALLOCATOR
 *   int64_t hs_process(unsigned char *input, size_t len);
 *
 * and optionally hs_init / hs_health (return 0 when ready / healthy),
 * hs_shutdown, and hs_migrate (converts the slot's state from the schema it
 * is given to the one the manifest declares; 0 = done). The prototypes are declared here, so a definition with the
 * wrong type does not compile; the ones it does not define are not exported.
 *
 * hs_process owns `input` and returns hotswap_pack(out, out_len, is_err);
 * `out` must stay valid until the host next calls into the plugin.
 *
 * For hs_alloc, a plugin without an allocator of its own can
 *
 *   #define HOTSWAP_BUMP_ALLOCATOR
 *   #include "hotswap.h"
 *
 * in that one file (see the end of this header).
 */
#ifndef HOTSWAP_H
#define HOTSWAP_H

#include <stddef.h> /* freestanding headers: available without libc */
#include <stdint.h>

#define HOTSWAP_ABI_VERSION 1

/* Export a function under `name`. export_name also keeps it alive through
 * -O2 and the linker's --gc-sections. */
#define HOTSWAP_EXPORT(name) __attribute__((export_name(name)))

/* Import `name` from the host's module "hotswap". (wasm-ld would otherwise
 * import from "env", which the host rejects.) */
#define HOTSWAP_IMPORT(name) \
    __attribute__((import_module("hotswap"), import_name(name)))

/* ---- the exports (pointers and size_t are i32 on wasm32) -------------- */

HOTSWAP_EXPORT("hs_alloc") void *hs_alloc(size_t len);
HOTSWAP_EXPORT("hs_process") int64_t hs_process(unsigned char *input, size_t len);
HOTSWAP_EXPORT("hs_init") int32_t hs_init(void);
HOTSWAP_EXPORT("hs_health") int32_t hs_health(void);
HOTSWAP_EXPORT("hs_shutdown") void hs_shutdown(void);
HOTSWAP_EXPORT("hs_migrate") int32_t hs_migrate(uint32_t from_schema);

/* ---- host functions ---------------------------------------------------- */

enum {
    HOTSWAP_LOG_ERROR = 0,
    HOTSWAP_LOG_WARN = 1,
    HOTSWAP_LOG_INFO = 2,
    HOTSWAP_LOG_DEBUG = 3,
    HOTSWAP_LOG_TRACE = 4,
};

/* kv_get's "absent", and the failures of kv_put / kv_delete. */
#define HOTSWAP_KV_ABSENT (-1)
#define HOTSWAP_KV_TOO_LARGE (-1)
#define HOTSWAP_KV_FULL (-2)
#define HOTSWAP_KV_STORAGE (-3)

/* The limits the host enforces: key and value sizes in bytes, and keys per
 * slot. A key over HOTSWAP_MAX_KEY is never present. */
#define HOTSWAP_MAX_KEY 1024
#define HOTSWAP_MAX_VALUE 1048576
#define HOTSWAP_MAX_KEYS 100000

/* Logs the UTF-8 text msg[0..len) at `level` (HOTSWAP_LOG_*). */
HOTSWAP_IMPORT("log")
void hotswap_log(int32_t level, const char *msg, size_t len);

/* A monotonic clock, in nanoseconds from an arbitrary origin. */
HOTSWAP_IMPORT("now_ns")
int64_t hotswap_now_ns(void);

/* Fills buf[0..len) with cryptographically secure random bytes; 0 = done. */
HOTSWAP_IMPORT("random")
int32_t hotswap_random(void *buf, size_t len);

/* HOTSWAP_KV_ABSENT if the key is absent; otherwise the value's length n.
 * The value is written to `val` only if n <= val_cap: if not, call again
 * with a buffer of at least n bytes. */
HOTSWAP_IMPORT("kv_get")
int64_t hotswap_kv_get(const void *key, size_t key_len, void *val, size_t val_cap);

/* 0 = stored, else HOTSWAP_KV_TOO_LARGE, HOTSWAP_KV_FULL or HOTSWAP_KV_STORAGE. */
HOTSWAP_IMPORT("kv_put")
int32_t hotswap_kv_put(const void *key, size_t key_len, const void *val, size_t val_len);

/* 1 = deleted, 0 = was absent, negative as for hotswap_kv_put. */
HOTSWAP_IMPORT("kv_delete")
int32_t hotswap_kv_delete(const void *key, size_t key_len);

/* The smallest key >= from[0..from_len), in byte order: HOTSWAP_KV_ABSENT
 * past the last key, otherwise its length n, written to `key` only if
 * n <= key_cap (a HOTSWAP_MAX_KEY-byte buffer always fits). Walk every key by
 * starting from the empty key and continuing from each key followed by a
 * zero byte. */
HOTSWAP_IMPORT("kv_next")
int64_t hotswap_kv_next(const void *from, size_t from_len, void *key, size_t key_cap);

/* ---- the manifest ------------------------------------------------------- */

/* Emits the `hotswap.manifest` custom section holding
 * {"name":"NAME","version":"VERSION","abi":1}. Use it once, at file scope;
 * HOTSWAP_MANIFEST_SCHEMA(name, version, schema) also declares the
 * state_schema (a decimal literal, such as 2).
 * C has no attribute for custom sections, but LLVM's wasm assembler turns a
 * section named .custom_section.X into custom section X, so this is
 * top-level asm. NAME and VERSION are string literals pasted into an .ascii
 * directive: they must follow docs/abi.md (and so contain no `"` or `\`),
 * which is not checked here. */
#define HOTSWAP_MANIFEST(name, version)                                     \
    __asm__(".section .custom_section.hotswap.manifest,\"\",@\n"            \
            ".ascii \"{\\\"name\\\":\\\"" name "\\\",\\\"version\\\":\\\"" \
            version "\\\",\\\"abi\\\":1}\"\n"                              \
            ".text\n")
#define HOTSWAP_MANIFEST_SCHEMA(name, version, schema)                      \
    __asm__(".section .custom_section.hotswap.manifest,\"\",@\n"            \
            ".ascii \"{\\\"name\\\":\\\"" name "\\\",\\\"version\\\":\\\"" \
            version "\\\",\\\"abi\\\":1,\\\"state_schema\\\":" #schema "}\"\n" \
            ".text\n")

/* ---- the return value of hs_process ----------------------------------- */

/* Bits 0-31: the output's address; bits 32-62: its length (at most
 * 2^31-1); bit 63: set when the output is an error message (UTF-8). */
static inline int64_t hotswap_pack(const void *out, size_t len, int is_err) {
    uint64_t bits = (uint64_t)(uintptr_t)out & 0xffffffffu;
    bits |= ((uint64_t)len & 0x7fffffffu) << 32;
    if (is_err)
        bits |= (uint64_t)1 << 63;
    return (int64_t)bits;
}

/* ---- an optional allocator ---------------------------------------------- */

#ifdef HOTSWAP_BUMP_ALLOCATOR
/* A bump allocator over the memory past the module's data (`__heap_base`,
 * defined by wasm-ld), growing `memory` as needed. It never frees one block:
 * instead, hs_alloc releases everything allocated before it. That is safe
 * because the host calls hs_alloc at the start of every call and the ABI
 * only asks a plugin to keep its last output until the next export is
 * called. So memory from hotswap_alloc (the input included) lives until the
 * next call begins, and no pointer may be kept across calls (keep state in
 * the key-value store anyway: instances are thrown away). */
extern unsigned char __heap_base;
static uintptr_t hotswap_heap_next_, hotswap_heap_end_;

/* len bytes, 8-aligned, or NULL if memory cannot grow. */
static void *hotswap_alloc(size_t len) {
    if (hotswap_heap_end_ == 0) {
        hotswap_heap_next_ = (uintptr_t)&__heap_base;
        hotswap_heap_end_ = (uintptr_t)__builtin_wasm_memory_size(0) * 65536u;
    }
    uintptr_t p = (hotswap_heap_next_ + 7u) & ~(uintptr_t)7u;
    if (p < hotswap_heap_next_ || len > UINTPTR_MAX - p)
        return NULL;
    uintptr_t end = p + len;
    if (end > hotswap_heap_end_) {
        size_t pages = (size_t)((end - hotswap_heap_end_ + 65535u) / 65536u);
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1)
            return NULL;
        hotswap_heap_end_ += pages * 65536u;
    }
    hotswap_heap_next_ = end;
    return (void *)p;
}

void *hs_alloc(size_t len) {
    hotswap_heap_next_ = (uintptr_t)&__heap_base; /* release the last call */
    return hotswap_alloc(len); /* non-NULL even for len 0 */
}
#endif /* HOTSWAP_BUMP_ALLOCATOR */

#endif /* HOTSWAP_H */
