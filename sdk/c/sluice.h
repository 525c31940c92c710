/*
 * sluice.h: the Sluice plugin ABI (version 1) for C, without libc.
 *
 * A plugin is a plain WebAssembly module: include this header, export the
 * functions below with SLUICE_EXPORT and build with Debian's clang and lld:
 *
 *   clang --target=wasm32 -O2 -nostdlib -ffreestanding -Wl,--no-entry \
 *       -I sdk/c -o NAME.wasm NAME.c
 *
 * Exports the host calls (pluginapi/ABI.md, "The module"):
 *
 *   SLUICE_EXPORT("sluice_abi_version") int32_t sluice_abi_version(void);
 *   SLUICE_EXPORT("sluice_hooks")       int32_t sluice_hooks(void);
 *   SLUICE_EXPORT("sluice_on_hook")     int32_t sluice_on_hook(int32_t hook);
 *   SLUICE_EXPORT("sluice_init")        int32_t sluice_init(void);      optional
 *   SLUICE_EXPORT("sluice_features")    int32_t sluice_features(int32_t host); optional
 *
 * No allocator export is needed: the guest owns every buffer and passes it
 * to the host with its capacity. Every constant below is checked against
 * the Go package pluginapi by pluginapi's tests (TestCHeader), so the two
 * cannot drift apart.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stdint.h>

/* The ABI version a module declares with sluice_abi_version. */
#define SLUICE_ABI_VERSION 1

/* Feature bits for sluice_features. */
#define SLUICE_FEATURE_INIT 1
#define SLUICE_FEATURE_ENTRY 2

/* Hooks; sluice_hooks returns a set of SLUICE_HOOK_BIT(hook). */
#define SLUICE_HOOK_INIT (-1)
#define SLUICE_HOOK_CONNECT 0
#define SLUICE_HOOK_HELO 1
#define SLUICE_HOOK_MAIL 2
#define SLUICE_HOOK_RCPT 3
#define SLUICE_HOOK_DATA 4
#define SLUICE_HOOK_DELIVER 5
#define SLUICE_HOOK_BIT(hook) (1 << (hook))

/* Verdicts sluice_on_hook returns. */
#define SLUICE_CONTINUE 0
#define SLUICE_ACCEPT 1
#define SLUICE_REJECT 2
#define SLUICE_TEMPFAIL 3
#define SLUICE_DISCARD 4
#define SLUICE_QUARANTINE 5
#define SLUICE_DISCONNECT 6

/* Statuses: a host function's result < 0. */
#define SLUICE_OK 0
#define SLUICE_NOT_FOUND (-1)
#define SLUICE_DENIED (-2)
#define SLUICE_BAD_ARGUMENT (-3)
#define SLUICE_WRONG_STAGE (-4)
#define SLUICE_TEMP_FAIL (-5)
#define SLUICE_TOO_LARGE (-6)

/* The most keys one sluice_kv_get_many call may read. */
#define SLUICE_MAX_KV_GET_MANY 64
/* The most counters one sluice_kv_incr_many call may add to. */
#define SLUICE_MAX_KV_INCR_MANY 64

/* Properties for sluice_get_prop. */
#define SLUICE_PROP_CLIENT_IP 0
#define SLUICE_PROP_CLIENT_PORT 1
#define SLUICE_PROP_CLIENT_RDNS 2
#define SLUICE_PROP_HELO 3
#define SLUICE_PROP_TLS 4
#define SLUICE_PROP_AUTH_USER 5
#define SLUICE_PROP_MAIL_FROM 6
#define SLUICE_PROP_RCPT 7
#define SLUICE_PROP_RCPTS 8
#define SLUICE_PROP_QUEUE_ID 9
#define SLUICE_PROP_HOOK 10
#define SLUICE_PROP_LISTENER 11
#define SLUICE_PROP_BODY_SIZE 12
#define SLUICE_PROP_DESTINATION 13
#define SLUICE_PROP_ATTEMPT 14
#define SLUICE_PROP_LOCAL_IP 15
#define SLUICE_PROP_AUTH_RESULTS 16
#define SLUICE_PROP_RDNS_STATUS 17
#define SLUICE_PROP_CLIENT_PTR 18
#define SLUICE_PROP_PLUGIN 19

/* DNS record types for sluice_dns_lookup. */
#define SLUICE_DNS_A 1
#define SLUICE_DNS_AAAA 28
#define SLUICE_DNS_MX 15
#define SLUICE_DNS_TXT 16
#define SLUICE_DNS_PTR 12

/* Log levels for sluice_log. */
#define SLUICE_LOG_DEBUG (-4)
#define SLUICE_LOG_INFO 0
#define SLUICE_LOG_WARN 4
#define SLUICE_LOG_ERROR 8

/* SLUICE_EXPORT(name) exports a function under name. */
#define SLUICE_EXPORT(name) __attribute__((export_name(name)))

/* SLUICE_IMPORT(name) imports a host function from the module "sluice". */
#define SLUICE_IMPORT(name) __attribute__((import_module("sluice"), import_name(name)))

/* SLUICE_STR("literal") expands to the pair (pointer, length) of a string
 * literal, without its NUL: sluice_log(SLUICE_LOG_INFO, SLUICE_STR("hi")). */
#define SLUICE_STR(lit) (lit), (int32_t)(sizeof(lit) - 1)

/*
 * Host functions. Strings are (pointer, length) pairs and need no NUL;
 * a receive buffer is (buf, cap): the host writes the value only when it
 * fits and always returns its full length, so a result > cap means "call
 * again with a buffer that large". A result < 0 is a SLUICE_* status.
 */
SLUICE_IMPORT("get_prop") int32_t sluice_get_prop(int32_t prop, char *buf, int32_t cap);
SLUICE_IMPORT("get_header") int32_t sluice_get_header(const char *name, int32_t name_len, int32_t index, char *buf, int32_t cap);
SLUICE_IMPORT("get_headers") int32_t sluice_get_headers(char *buf, int32_t cap);
SLUICE_IMPORT("read_body") int32_t sluice_read_body(int64_t offset, char *buf, int32_t cap);
SLUICE_IMPORT("add_header") int32_t sluice_add_header(const char *name, int32_t name_len, const char *value, int32_t value_len);
SLUICE_IMPORT("set_header") int32_t sluice_set_header(const char *name, int32_t name_len, const char *value, int32_t value_len);
SLUICE_IMPORT("del_header") int32_t sluice_del_header(const char *name, int32_t name_len);
SLUICE_IMPORT("add_rcpt") int32_t sluice_add_rcpt(const char *addr, int32_t addr_len);
SLUICE_IMPORT("del_rcpt") int32_t sluice_del_rcpt(const char *addr, int32_t addr_len);
SLUICE_IMPORT("rewrite_rcpt") int32_t sluice_rewrite_rcpt(const char *old_addr, int32_t old_len, const char *new_addr, int32_t new_len);
SLUICE_IMPORT("get_note") int32_t sluice_get_note(const char *key, int32_t key_len, char *buf, int32_t cap);
SLUICE_IMPORT("set_note") int32_t sluice_set_note(const char *key, int32_t key_len, const char *value, int32_t value_len);
SLUICE_IMPORT("get_config") int32_t sluice_get_config(const char *key, int32_t key_len, char *buf, int32_t cap);
SLUICE_IMPORT("log") void sluice_log(int32_t level, const char *msg, int32_t msg_len);
SLUICE_IMPORT("now") int64_t sluice_now(void);
SLUICE_IMPORT("add_score") int32_t sluice_add_score(const char *symbol, int32_t symbol_len, double score);
SLUICE_IMPORT("set_reply") int32_t sluice_set_reply(int32_t code, const char *enhanced, int32_t enhanced_len, const char *text, int32_t text_len);
SLUICE_IMPORT("set_route") int32_t sluice_set_route(const char *route, int32_t route_len);
SLUICE_IMPORT("dns_lookup") int32_t sluice_dns_lookup(int32_t type, const char *name, int32_t name_len, char *buf, int32_t cap);
SLUICE_IMPORT("kv_get") int32_t sluice_kv_get(const char *key, int32_t key_len, char *buf, int32_t cap);
/* keys "\n"-separated (at most SLUICE_MAX_KV_GET_MANY); buf receives, per key in order, an int32 little-endian length (-1: missing) and the value. */
SLUICE_IMPORT("kv_get_many") int32_t sluice_kv_get_many(const char *keys, int32_t keys_len, char *buf, int32_t cap);
SLUICE_IMPORT("kv_set") int32_t sluice_kv_set(const char *key, int32_t key_len, const char *value, int32_t value_len, int64_t ttl_ms);
SLUICE_IMPORT("kv_incr") int32_t sluice_kv_incr(const char *key, int32_t key_len, int64_t delta, int64_t ttl_ms, int64_t *out);
/* keys "\n"-separated (at most SLUICE_MAX_KV_INCR_MANY); args holds per key in order its delta and ttl_ms; out receives per key its new value. */
SLUICE_IMPORT("kv_incr_many") int32_t sluice_kv_incr_many(const char *keys, int32_t keys_len, const int64_t *args, int64_t *out);
SLUICE_IMPORT("kv_del") int32_t sluice_kv_del(const char *key, int32_t key_len);
SLUICE_IMPORT("metric_add") int32_t sluice_metric_add(const char *name, int32_t name_len, double delta);

#endif /* SLUICE_H */
