// SHA-256 of a batch of files for content keys, loaded by kiln through koffi and called on a
// thread-pool thread (src/store/file-hash-batch.ts): reading and hashing thousands of small
// context files was most of a cold build's key on the event loop, on one CPU.
//
// The hash is the OpenSSL inside the Node process that loads this library, found at run time
// (Node exports it for addons); without it, kiln_hash_files says so and kiln hashes in
// JavaScript.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

// OpenSSL's SHA256_CTX is 112 bytes; it is only ever handled through these calls.
typedef struct {
  uint64_t opaque[14];
} sha256_ctx;

typedef int (*sha_init_fn)(sha256_ctx *);
typedef int (*sha_update_fn)(sha256_ctx *, const void *, size_t);
typedef int (*sha_final_fn)(unsigned char *, sha256_ctx *);

static sha_init_fn sha_init;
static sha_update_fn sha_update;
static sha_final_fn sha_final;
static pthread_once_t resolved = PTHREAD_ONCE_INIT;

static void resolve(void) {
  sha_init = (sha_init_fn)dlsym(RTLD_DEFAULT, "SHA256_Init");
  sha_update = (sha_update_fn)dlsym(RTLD_DEFAULT, "SHA256_Update");
  sha_final = (sha_final_fn)dlsym(RTLD_DEFAULT, "SHA256_Final");
}

#define KILN_HASH_UNAVAILABLE (-2)

/**
 * `paths` holds NUL-terminated paths; the 32-byte digest of each goes to `out`, in order.
 * Returns how many were hashed, -1 with a message naming the file in `err` (it stops there),
 * or KILN_HASH_UNAVAILABLE.
 */
int kiln_hash_files(const uint8_t *paths, size_t len, uint8_t *out, size_t out_len, char *err, size_t errlen) {
  pthread_once(&resolved, resolve);
  if (!sha_init || !sha_update || !sha_final) return KILN_HASH_UNAVAILABLE;
  static __thread unsigned char buf[1 << 16];
  size_t off = 0;
  int count = 0;
  while (off < len) {
    const char *path = (const char *)paths + off;
    const char *end = memchr(path, 0, len - off);
    if (!end) {
      snprintf(err, errlen, "hash batch: a path without its end at byte %zu", off);
      return -1;
    }
    off = (size_t)(end + 1 - (const char *)paths);
    if ((size_t)(count + 1) * 32 > out_len) {
      snprintf(err, errlen, "hash batch: more paths than room for digests");
      return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      snprintf(err, errlen, "open %s: %s", path, strerror(errno));
      return -1;
    }
    sha256_ctx ctx;
    sha_init(&ctx);
    for (;;) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        snprintf(err, errlen, "read %s: %s", path, strerror(errno));
        close(fd);
        return -1;
      }
      sha_update(&ctx, buf, (size_t)n);
    }
    close(fd);
    sha_final(out + (size_t)count * 32, &ctx);
    count++;
  }
  return count;
}
