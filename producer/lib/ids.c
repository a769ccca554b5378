/*
 * ids: job ids, the id/tenant/route/queue name charset, and the clock.
 *
 * A new id is 12 hex digits of the millisecond clock followed by 16 hex
 * digits from the kernel's CSPRNG: fixed width, so ids sort by creation
 * time (to the millisecond), and 64 random bits make a collision between
 * processes on different hosts negligible without any coordination.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "internal.h"

int relayq__valid_name(const char *p, size_t n) {
  if (p == NULL || n == 0 || n > RELAYQ_ID_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
             (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
             c == '@' || c == '-';
    if (!ok) return 0;
  }
  return 1;
}

int relayq__valid_tenant_name(const char *p, size_t n) {
  return relayq__valid_name(p, n) && memchr(p, ':', n) == NULL;
}

int relayq_valid_tenant(const char *s) {
  if (s == NULL) return 0;
  return relayq__valid_tenant_name(s, strnlen(s, RELAYQ_ID_MAX + 1));
}

int relayq_valid_id(const char *s) {
  if (s == NULL) return 0;
  /* strnlen: never walk far past the limit on a long or hostile string. */
  return relayq__valid_name(s, strnlen(s, RELAYQ_ID_MAX + 1));
}

int64_t relayq_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fills buf with random bytes: getrandom() first (no file descriptor,
 * works in a chroot); OpenSSL's RAND_bytes when the kernel lacks it. */
static void fill_random(unsigned char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(buf + got, n - got, 0);
    if (r > 0) {
      got += (size_t)r;
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  if (got < n && RAND_bytes(buf + got, (int)(n - got)) != 1) {
    /* Both sources failed: the clock still makes the id time-ordered and
     * the pid/address mix keeps two processes apart; never return an
     * uninitialised or constant suffix. */
    uint64_t mix = (uint64_t)relayq_now_ms() ^ ((uint64_t)getpid() << 32) ^
                   (uint64_t)(uintptr_t)buf;
    for (size_t i = got; i < n; i++) {
      mix = mix * 6364136223846793005ull + 1442695040888963407ull;
      buf[i] = (unsigned char)(mix >> 56);
    }
  }
}

void relayq_id_new(char out[40]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char rnd[8];
  fill_random(rnd, sizeof rnd);
  uint64_t ms = (uint64_t)relayq_now_ms() & 0xffffffffffffull; /* 48 bits */
  int k = 0;
  for (int shift = 44; shift >= 0; shift -= 4) out[k++] = hex[(ms >> shift) & 0xf];
  for (size_t i = 0; i < sizeof rnd; i++) {
    out[k++] = hex[rnd[i] >> 4];
    out[k++] = hex[rnd[i] & 0xf];
  }
  out[k] = '\0';
}
