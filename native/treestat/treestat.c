/* kiln-treestat PATH...: the metadata of every entry under each PATH (never following a
 * symlink), for a rebuild to tell in one spawn that a COPY's sources are exactly as they were.
 * Node takes ~5 us per lstat before its JIT warms up; this walk costs ~1 us per entry here.
 *
 * Output, in the machine's byte order (kiln only reads it on this machine): the format's number
 * (u32, TREESTAT_FORMAT: kiln ignores the output of a helper left from another version), then a
 * record of the newest mtime or ctime seen (kiln does not trust a tree that changed within the
 * timestamps' granularity): i64 sec, u32 nsec. Then per argument a u32 index, and per entry in
 * pre-order with names sorted bytewise: u32 length and the path relative to the argument (""
 * for the argument itself), then mode, uid, gid (u32), size (u64), mtime, ctime (i64 sec, u32
 * nsec), inode, rdev and dev (u64), nlink (u32). Exit 1 with a message on any error: the
 * caller then reads the tree itself, which reports the error properly. When the tree changed,
 * the caller's walk takes the entries' metadata from this output instead of an lstat each.
 *
 * "-x REL" after a PATH skips the entry at REL below it, and everything inside (folders the
 * COPY's ignore rules leave out whole: a node_modules need not be walked). */
#define _GNU_SOURCE
/* Bumped with every change of the output below (src/worker/file/tree-memo.ts checks it). */
#define TREESTAT_FORMAT 2
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *out;
static size_t out_len, out_cap;
static struct timespec newest;

static void die(const char *what, const char *path) {
  fprintf(stderr, "kiln-treestat: %s %s: %s\n", what, path, strerror(errno));
  exit(1);
}

static void *grow(void *p, size_t *cap, size_t need, size_t first) {
  if (need <= *cap) return p;
  size_t c = *cap ? *cap : first;
  while (c < need) c *= 2;
  p = realloc(p, c);
  if (!p) die("realloc", "");
  *cap = c;
  return p;
}

static void put(const void *data, size_t n) {
  out = grow(out, &out_cap, out_len + n, 1 << 16);
  memcpy(out + out_len, data, n);
  out_len += n;
}

static void put_u32(uint32_t v) { put(&v, sizeof(v)); }
static void put_u64(uint64_t v) { put(&v, sizeof(v)); }
static void put_time(const struct timespec *t) {
  put_u64((uint64_t)t->tv_sec);
  put_u32((uint32_t)t->tv_nsec);
}

static void note_time(const struct timespec *t) {
  if (t->tv_sec > newest.tv_sec || (t->tv_sec == newest.tv_sec && t->tv_nsec > newest.tv_nsec)) newest = *t;
}

static void record(const char *rel, size_t rel_len, const struct stat *st) {
  put_u32((uint32_t)rel_len);
  put(rel, rel_len);
  put_u32(st->st_mode);
  put_u32(st->st_uid);
  put_u32(st->st_gid);
  put_u64((uint64_t)st->st_size);
  put_time(&st->st_mtim);
  put_time(&st->st_ctim);
  put_u64(st->st_ino);
  put_u64(st->st_rdev);
  put_u64(st->st_dev);
  put_u32((uint32_t)st->st_nlink);
  note_time(&st->st_mtim);
  note_time(&st->st_ctim);
}

/* The current argument's skipped paths (relative, as in the output). */
static char **skips;
static int nskips;

static int skipped(const char *rel) {
  for (int i = 0; i < nskips; i++)
    if (strcmp(skips[i], rel) == 0) return 1;
  return 0;
}

/* One folder's names: offsets into one buffer, not an allocation per name. */
static const char *names_base;
static int by_name(const void *a, const void *b) {
  return strcmp(names_base + *(const size_t *)a, names_base + *(const size_t *)b);
}

/* dir_fd is the open folder at `rel` (rel_len bytes of the shared path buffer). */
static void walk(int dir_fd, char *rel, size_t rel_len) {
  DIR *d = fdopendir(dup(dir_fd));
  if (!d) die("opendir", rel);
  char *names = NULL;
  size_t *offs = NULL;
  size_t names_len = 0, names_cap = 0, n = 0, offs_cap = 0;
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t len = strlen(e->d_name) + 1;
    names = grow(names, &names_cap, names_len + len, 4096);
    offs = grow(offs, &offs_cap, (n + 1) * sizeof(*offs), 64 * sizeof(*offs));
    memcpy(names + names_len, e->d_name, len);
    offs[n++] = names_len;
    names_len += len;
  }
  if (errno != 0) die("readdir", rel);
  closedir(d);
  names_base = names;
  qsort(offs, n, sizeof(*offs), by_name);
  for (size_t i = 0; i < n; i++) {
    const char *name = names + offs[i];
    size_t name_len = strlen(name);
    size_t len = rel_len + (rel_len ? 1 : 0) + name_len;
    if (len >= PATH_MAX) {
      errno = ENAMETOOLONG;
      die("path", rel);
    }
    if (rel_len) rel[rel_len] = '/';
    memcpy(rel + len - name_len, name, name_len + 1);
    if (nskips > 0 && skipped(rel)) {
      rel[rel_len] = '\0';
      continue;
    }
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) die("lstat", rel);
    record(rel, len, &st);
    if (S_ISDIR(st.st_mode)) {
      int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) die("open", rel);
      walk(fd, rel, len);
      close(fd);
    }
    rel[rel_len] = '\0';
  }
  free(names);
  free(offs);
}

int main(int argc, char **argv) {
  static char rel[PATH_MAX];
  skips = calloc((size_t)argc, sizeof(*skips));
  if (!skips) die("calloc", "");
  for (int i = 1, index = 0; i < argc; i++, index++) {
    struct stat st;
    const char *path = argv[i];
    nskips = 0;
    while (i + 1 < argc && strcmp(argv[i + 1], "-x") == 0) {
      if (i + 2 >= argc) {
        errno = EINVAL;
        die("-x without a path after", path);
      }
      skips[nskips++] = argv[i + 2];
      i += 2;
    }
    put_u32((uint32_t)index);
    if (lstat(path, &st) < 0) die("lstat", path);
    rel[0] = '\0';
    record(rel, 0, &st);
    if (!S_ISDIR(st.st_mode)) continue;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) die("open", path);
    walk(fd, rel, 0);
    close(fd);
  }
  uint32_t format = TREESTAT_FORMAT;
  if (fwrite(&format, sizeof(format), 1, stdout) != 1) die("write", "stdout");
  if (fwrite(&newest.tv_sec, sizeof(int64_t), 1, stdout) != 1) die("write", "stdout");
  uint32_t nsec = (uint32_t)newest.tv_nsec;
  if (fwrite(&nsec, sizeof(nsec), 1, stdout) != 1) die("write", "stdout");
  if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0) die("write", "stdout");
  return 0;
}
