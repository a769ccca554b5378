/*
 * text: the text predicates of the contract (names, UTF-8), which the
 * codec, the key builder and the client apply, shared with the CLI so it
 * refuses what a worker would. librelayq's house API (producer/lib/
 * CMakeLists.txt): linked statically, not exported from librelayq.so.
 */
#ifndef RELAYQ_TEXT_H
#define RELAYQ_TEXT_H

#include <stddef.h>

/* 1 when p[0..n) is well-formed UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
int relayq__utf8_valid(const char *p, size_t n);

/* 1 when p[0..n) is 1-128 chars of [A-Za-z0-9._:@-] (ids, tenants, routes,
 * queue names). */
int relayq__valid_name(const char *p, size_t n);

/* 1 when p[0..n) is 1-128 chars of [A-Za-z0-9._@-]: tenant and route
 * names, which have no ':' (v1.1) so that P:tenant:T:route:R is never
 * another tenant's hash. */
int relayq__valid_tenant_name(const char *p, size_t n);

#endif
