// Copies a batch of regular files for a COPY step, loaded by kiln through koffi and called on a
// thread-pool thread (src/worker/file/copy-batch.ts). One call per batch instead of five
// syscalls' worth of JavaScript per file: a context of thousands of small files spent most of
// its COPY in per-file overhead on the event loop, and two batches run on two CPUs.
//
// A job is: uid (u32), gid (u32), mode (u32), mtime seconds (i64), all little-endian, then the
// source path and the destination path, each NUL-terminated. The destination must not exist.
// Each file gets the content of its source (a reflink where the filesystem has them), then its
// owner, then its mode (chown clears setuid and setgid), then atime and mtime.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *what, const char *path) {
  snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
  return -1;
}

static int copy_data(int in, int out) {
  if (ioctl(out, FICLONE, in) == 0) return 0;
  for (;;) {
    ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
    if (n > 0) continue;
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP) return -1;
    break; // the kernel will not: copy through a buffer (from where it stopped)
  }
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(out, buf + done, (size_t)(n - done));
      if (w < 0) {
        if (errno == EINTR) continue;
        return -1;
      }
      done += w;
    }
  }
}

/** The job format's version: kiln refuses a library built for another (src/util/native-files.ts). */
int kiln_files_version(void) { return 2; }

static uint32_t u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/** 0, or -1 with a message naming the file in `err`. Stops at the first failure. */
int kiln_copy_files(const uint8_t *jobs, size_t len, char *err, size_t errlen) {
  size_t off = 0;
  while (off < len) {
    if (len - off < 20) {
      snprintf(err, errlen, "copy batch: a truncated job at byte %zu", off);
      return -1;
    }
    const uint8_t *h = jobs + off;
    uint32_t uid = u32(h), gid = u32(h + 4), mode = u32(h + 8);
    int64_t mtime = (int64_t)((uint64_t)u32(h + 12) | (uint64_t)u32(h + 16) << 32);
    const char *src = (const char *)h + 20;
    const char *src_end = memchr(src, 0, len - off - 20);
    const char *dst = src_end ? src_end + 1 : NULL;
    const char *dst_end = dst ? memchr(dst, 0, (size_t)((const char *)jobs + len - dst)) : NULL;
    if (!dst_end) {
      snprintf(err, errlen, "copy batch: a job without its two paths at byte %zu", off);
      return -1;
    }
    off = (size_t)((const uint8_t *)dst_end + 1 - jobs);

    int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0) return fail(err, errlen, "open", src);
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0) {
      close(in);
      return fail(err, errlen, "create", dst);
    }
    const char *what = NULL;
    struct timespec times[2] = {{.tv_sec = mtime, .tv_nsec = 0}, {.tv_sec = mtime, .tv_nsec = 0}};
    if (copy_data(in, out) != 0) what = "copy to";
    else if (fchown(out, uid, gid) != 0) what = "chown";
    else if (fchmod(out, mode & 07777) != 0) what = "chmod";
    else if (futimens(out, times) != 0) what = "set times of";
    int saved = errno;
    close(in);
    if (close(out) != 0 && !what) {
      saved = errno;
      what = "close";
    }
    if (what) {
      errno = saved;
      return fail(err, errlen, what, dst);
    }
  }
  return 0;
}
