/* After the step: the helper takes out of the upperdir what the sandbox put there only to
 * mount on (stubs), and the folders overlayfs copied up just to hold them, then removes the
 * step's scaffolding folders. Done here, with plain syscalls right after the step's namespace
 * is gone, because it runs after every RUN and costs a fraction of the same work in Node. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "sandbox.h"

/* Written by the step's init (a separate process), read by the supervisor: shared memory. */
struct stub_log {
  size_t used;
  char data[65536 - sizeof(size_t)];
};
static struct stub_log *log_;

void stub_log_init(void) {
  log_ = mmap(NULL, sizeof(*log_), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (log_ == MAP_FAILED) fail(errno, "mmap");
  log_->used = 0;
}

/* Records are "<type><path>\0", type 'd' or 'f'. */
void record_stub(char type, const char *path) {
  size_t n = strlen(path) + 2;
  if (log_->used + n > sizeof(log_->data)) fail(0, "too many mount targets");
  log_->data[log_->used] = type;
  memcpy(log_->data + log_->used + 1, path, n - 1);
  log_->used += n;
}

static int is_opaque(const char *p) {
  char v[2];
  return lgetxattr(p, "trusted.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y';
}

static int is_empty_dir(const char *p) {
  DIR *d = opendir(p);
  if (!d) return 0;
  struct dirent *e;
  int empty = 1;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      empty = 0;
      break;
    }
  closedir(d);
  return empty;
}

static int is_stub(const char *rel) {
  for (size_t off = 0; off < log_->used; off += strlen(log_->data + off) + 1)
    if (!strcmp(log_->data + off + 1, rel)) return 1;
  return 0;
}

/* A folder that exists below, and is now empty in the upperdir with the owner and mode it has
 * below, was copied up for a stub alone. The topmost lower copy is the one the step saw. */
static int copied_up_only(const struct spec *s, const char *rel, const struct stat *up) {
  char p[PATH_MAX];
  for (int i = 0; i < s->nlowers; i++) {
    struct stat st;
    snprintf(p, sizeof(p), "%s%s", s->lowers[i], rel);
    if (lstat(p, &st) < 0) continue;
    return S_ISDIR(st.st_mode) && st.st_mode == up->st_mode && st.st_uid == up->st_uid && st.st_gid == up->st_gid;
  }
  return 0;
}

static void remove_copied_up_parents(const struct spec *s, char *rel) {
  char p[PATH_MAX];
  for (;;) {
    char *slash = strrchr(rel, '/');
    if (!slash || slash == rel) return;
    *slash = 0;
    if (is_stub(rel)) return;
    snprintf(p, sizeof(p), "%s%s", s->upper, rel);
    struct stat st;
    if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode) || is_opaque(p) || !is_empty_dir(p)) return;
    if (!copied_up_only(s, rel, &st) || rmdir(p) < 0) return;
  }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (flag == FTW_DP) rmdir(path);
  else unlink(path);
  return 0;
}

/* What overlayfs leaves in a workdir after a volatile mount; removed deepest first. Only work/
 * itself is in use while the overlay is mounted; the markers before it are not read again. */
static const char *const overlay_work_leftovers[] = {"work/incompat/volatile/dirty", "work/incompat/volatile",
                                                     "work/incompat", "work", NULL};
#define OVERLAY_MARKERS 3

void remove_overlay_markers(const char *workdir) {
  char p[PATH_MAX];
  for (int i = 0; i < OVERLAY_MARKERS; i++) {
    snprintf(p, sizeof(p), "%s/%s", workdir, overlay_work_leftovers[i]);
    if ((i == 0 ? unlink(p) : rmdir(p)) < 0) return;
  }
}

/* A scrap folder is usually missing or the root overlay's workdir, whose leftovers are known
 * (the markers are usually gone already): a handful of direct calls instead of a tree walk,
 * which opens and stats every level. Anything else gets the walk. */
static void remove_scrap(const struct spec *s, const char *dir) {
  if (s->workdir && !strcmp(dir, s->workdir)) {
    char p[PATH_MAX];
    for (int i = OVERLAY_MARKERS; overlay_work_leftovers[i]; i++) {
      snprintf(p, sizeof(p), "%s/%s", dir, overlay_work_leftovers[i]);
      if (rmdir(p) < 0 && errno != ENOENT) {
        remove_overlay_markers(dir); /* the step ended before they could go */
        rmdir(p);
      }
    }
  }
  if (rmdir(dir) == 0 || errno == ENOENT) return;
  nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void clean_after_step(const struct spec *s) {
  if (s->upper) {
    /* Last created first: a stub folder holding a stub file empties before its own turn. */
    size_t offs[4096];
    int n = 0;
    for (size_t off = 0; off < log_->used && n < 4096; off += strlen(log_->data + off) + 1) offs[n++] = off;
    char p[PATH_MAX], rel[PATH_MAX];
    for (int i = n - 1; i >= 0; i--) {
      const char *rec = log_->data + offs[i];
      snprintf(p, sizeof(p), "%s%s", s->upper, rec + 1);
      struct stat st;
      if (lstat(p, &st) < 0) continue;
      int gone = 0;
      if (rec[0] == 'd' && S_ISDIR(st.st_mode) && !is_opaque(p) && is_empty_dir(p)) gone = rmdir(p) == 0;
      else if (rec[0] == 'f' && S_ISREG(st.st_mode) && st.st_size == 0) gone = unlink(p) == 0;
      if (!gone) continue;
      snprintf(rel, sizeof(rel), "%s", rec + 1);
      remove_copied_up_parents(s, rel);
    }
  }
  timing("stubs-cleaned");
  for (int i = 0; i < s->nscrap; i++) remove_scrap(s, s->scrap[i]);
}
