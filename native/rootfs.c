/* The step's root filesystem: the overlay, /proc with Docker's masks, a minimal /dev, a
 * read-only /sys, the RUN --mount targets, then pivot_root. Every mount happens in the
 * helper child's private mount namespace, so nothing here can outlive the step on the host.
 * Paths inside the image are resolved with openat2(RESOLVE_IN_ROOT): an image's symlinks can
 * never redirect a mount onto a host path. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <limits.h>
#include <unistd.h>
#include "sandbox.h"

static int rootfd = -1;
/* Off while creating the working directory: WORKDIR made by RUN belongs in the layer. */
static int report_stubs = 1;

static int open_in_root(const char *path, int flags) {
  struct open_how how = {.flags = (unsigned long long)(flags | O_PATH | O_CLOEXEC),
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

static const char *fdpath(int fd) {
  static char buf[4][64];
  static int i;
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof(buf[i]), "/proc/self/fd/%d", fd);
  return buf[i];
}

/* Opens `path` in the root, creating missing components (reported as stubs so the TypeScript
 * side can remove them from the layer: they exist only to be mounted on). */
static int make_target(const char *path, int is_dir) {
  int fd = open_in_root(path, 0);
  if (fd >= 0) return fd;
  if (errno != ENOENT) fail(errno, "mount target %s", path);
  char *copy = strdup(path);
  size_t n = strlen(copy);
  while (n > 1 && copy[n - 1] == '/') copy[--n] = 0;
  char *slash = strrchr(copy, '/');
  if (!slash || slash[1] == 0) fail(EINVAL, "mount target %s", path);
  *slash = 0;
  const char *parent = copy[0] ? copy : "/";
  int pfd = make_target(parent, 1);
  const char *name = slash + 1;
  if (is_dir) {
    if (mkdirat(pfd, name, 0755) < 0 && errno != EEXIST) fail(errno, "mkdir %s", path);
  } else {
    int f = openat(pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (f < 0 && errno != EEXIST) fail(errno, "create %s", path);
    if (f >= 0) close(f);
  }
  if (report_stubs) {
    char rel[PATH_MAX];
    snprintf(rel, sizeof(rel), "%s/%s", strcmp(parent, "/") ? parent : "", name);
    record_stub(is_dir ? 'd' : 'f', rel);
  }
  close(pfd);
  free(copy);
  fd = open_in_root(path, 0);
  if (fd < 0) fail(errno, "mount target %s", path);
  return fd;
}

static void do_mount(const char *src, int target_fd, const char *type, unsigned long flags, const char *data,
                     const char *what) {
  if (mount(src, fdpath(target_fd), type, flags, data) < 0) fail(errno, "mount %s", what);
}

/* Bind mounts are made read-only by a remount of the new mount (the flag is ignored on the
 * first call); the new mount is reached by opening the path again. */
static void remount_ro(const char *path, unsigned long extra) {
  int fd = open_in_root(path, 0);
  if (fd < 0) fail(errno, "reopen %s", path);
  if (mount(NULL, fdpath(fd), NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | extra, NULL) < 0)
    fail(errno, "remount %s read-only", path);
  close(fd);
}

static void bind_into(const char *src, const char *target, int readonly, const char *what) {
  struct stat st;
  if (stat(src, &st) < 0) fail(errno, "%s: %s", what, src);
  int fd = make_target(target, S_ISDIR(st.st_mode));
  do_mount(src, fd, NULL, MS_BIND | MS_REC, NULL, what);
  close(fd);
  if (readonly) remount_ro(target, MS_REC);
}

static void mount_proc(int insecure) {
  int fd = make_target("/proc", 1);
  do_mount("proc", fd, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, "/proc");
  close(fd);
  if (insecure) return;
  /* Docker's masked paths: files get /dev/null, folders an empty read-only tmpfs. */
  static const char *masked[] = {"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                                 "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                 "/proc/sched_debug", "/proc/scsi", NULL};
  for (int i = 0; masked[i]; i++) {
    int m = open_in_root(masked[i], 0);
    if (m < 0) continue; /* not in this kernel */
    struct stat st;
    if (fstat(m, &st) == 0 && S_ISDIR(st.st_mode))
      do_mount("tmpfs", m, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0", masked[i]);
    else
      do_mount("/dev/null", m, NULL, MS_BIND, NULL, masked[i]);
    close(m);
  }
  static const char *readonly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL};
  for (int i = 0; readonly[i]; i++) {
    int m = open_in_root(readonly[i], 0);
    if (m < 0) continue;
    do_mount(fdpath(m), m, NULL, MS_BIND | MS_REC, NULL, readonly[i]);
    close(m);
    remount_ro(readonly[i], MS_NOSUID | MS_NODEV | MS_NOEXEC);
  }
}

static void mount_dev(const struct spec *s) {
  int fd = make_target("/dev", 1);
  do_mount("tmpfs", fd, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k", "/dev");
  close(fd);
  int dev = open_in_root("/dev", O_DIRECTORY);
  if (dev < 0) fail(errno, "open /dev");
  /* O_PATH fds cannot be used with mknodat's dirfd on every kernel; reopen it for real. */
  int d = openat(dev, ".", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (d < 0) fail(errno, "open /dev");
  static const struct { const char *name; int major, minor; } nodes[] = {
      {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
  for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
    if (mknodat(d, nodes[i].name, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)) < 0)
      fail(errno, "mknod /dev/%s", nodes[i].name);
    fchmodat(d, nodes[i].name, 0666, 0); /* undo the umask */
  }
  static const char *links[][2] = {{"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"},
                                   {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
                                   {"ptmx", "pts/ptmx"},          {"core", "/proc/kcore"}};
  /* /dev/core only where the host has a /proc/kcore for it to name, as runc does. */
  int has_kcore = access("/proc/kcore", F_OK) == 0;
  for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
    if (!has_kcore && strcmp(links[i][0], "core") == 0) continue;
    if (symlinkat(links[i][1], d, links[i][0]) < 0) fail(errno, "symlink /dev/%s", links[i][0]);
  }
  if (mkdirat(d, "pts", 0755) < 0 || mkdirat(d, "shm", 01777) < 0 || mkdirat(d, "mqueue", 0755) < 0)
    fail(errno, "mkdir in /dev");
  close(d);
  close(dev);
  fd = open_in_root("/dev/pts", 0);
  do_mount("devpts", fd, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", "/dev/pts");
  close(fd);
  fd = open_in_root("/dev/shm", 0);
  char shm_opts[64];
  snprintf(shm_opts, sizeof(shm_opts), "mode=1777,size=%s", s->shm_size ? s->shm_size : "65536k");
  do_mount("shm", fd, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, shm_opts, "/dev/shm");
  close(fd);
  fd = open_in_root("/dev/mqueue", 0);
  do_mount("mqueue", fd, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, "/dev/mqueue");
  close(fd);
}

/* With limits, the step's cgroups, read-only at /sys/fs/cgroup as Docker shows them: inside
 * the step's cgroup namespace each hierarchy's root is the step's own cgroup, so a runtime that
 * sizes itself from memory.limit_in_bytes or memory.max sees the --memory limit. */
static void mount_cgroups(void) {
  int fd = open_in_root("/sys/fs/cgroup", O_DIRECTORY);
  if (fd < 0) return; /* a kernel without cgroups */
  report_stubs = 0;   /* mount points on a tmpfs of ours, not in the overlay */
  do_mount("tmpfs", fd, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=64k", "/sys/fs/cgroup");
  close(fd);
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (!f) fail(errno, "read /proc/self/cgroup");
  char line[4096];
  int v1 = 0, v2 = 0;
  while (fgets(line, sizeof(line), f)) {
    char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
    if (!a || !b) continue;
    *b = 0;
    const char *ctrls = a + 1;
    if (*ctrls == 0) {
      v2 = 1;
      continue;
    }
    if (!strncmp(ctrls, "name=", 5)) continue;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", ctrls);
    int d = make_target(path, 1);
    do_mount("cgroup", d, "cgroup", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, ctrls, path);
    close(d);
    v1 = 1;
  }
  fclose(f);
  if (v2) {
    const char *path = v1 ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup";
    int d = v1 ? make_target(path, 1) : open_in_root(path, O_DIRECTORY);
    if (mount("cgroup2", fdpath(d), "cgroup2", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 && !v1)
      fail(errno, "mount cgroup2");
    close(d);
  }
  remount_ro("/sys/fs/cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  report_stubs = 1;
}

static void mount_sys(int insecure, int cgroups) {
  int fd = make_target("/sys", 1);
  unsigned long ro = insecure ? 0 : MS_RDONLY;
  do_mount("sysfs", fd, "sysfs", ro | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, "/sys");
  close(fd);
  if (cgroups) mount_cgroups();
  if (insecure) return;
  static const char *masked[] = {"/sys/firmware", "/sys/devices/virtual/powercap", NULL};
  for (int i = 0; masked[i]; i++) {
    int m = open_in_root(masked[i], 0);
    if (m < 0) continue;
    do_mount("tmpfs", m, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0", masked[i]);
    close(m);
  }
}

/* Secret and heredoc contents live in the private tmpfs: they never touch a disk or the layer. */
static void mount_file(const struct spec *s, const struct record *r, int idx) {
  const char *target = r->tok[1];
  mode_t mode = (mode_t)strtoul(r->tok[2], NULL, 8);
  uid_t uid = (uid_t)strtoul(r->tok[3], NULL, 10);
  gid_t gid = (gid_t)strtoul(r->tok[4], NULL, 10);
  int readonly = !strcmp(r->tok[5], "ro");
  char path[4096];
  snprintf(path, sizeof(path), "%s/f%d", s->private_dir, idx);
  int f = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (f < 0) fail(errno, "stage %s", target);
  size_t off = 0;
  while (off < r->len[6]) {
    ssize_t w = write(f, r->tok[6] + off, r->len[6] - off);
    if (w < 0) fail(errno, "stage %s", target);
    off += (size_t)w;
  }
  if (fchown(f, uid, gid) < 0 || fchmod(f, mode) < 0) fail(errno, "stage %s", target);
  close(f);
  bind_into(path, target, readonly, target);
}

/* A stage's filesystem for --mount=from=stage: an overlay of its layers on a host staging
 * folder (again only in this namespace), then the wanted subfolder bound onto the target. */
static void mount_overlay_at(const struct record *r) {
  const char *staging = r->tok[1], *cwd = r->tok[2], *data = r->tok[3], *sub = r->tok[4], *target = r->tok[5];
  int readonly = !strcmp(r->tok[6], "ro");
  if (chdir(cwd) < 0) fail(errno, "chdir %s", cwd);
  if (mount("overlay", staging, "overlay", readonly ? MS_RDONLY : 0, data) < 0) fail(errno, "overlay for %s", target);
  int saved = rootfd;
  rootfd = open(staging, O_PATH | O_DIRECTORY | O_CLOEXEC);
  int src = open_in_root(sub, 0);
  if (src < 0) fail(errno, "mount source %s", sub);
  close(rootfd);
  rootfd = saved;
  bind_into(fdpath(src), target, readonly, target);
  close(src);
}

/* A bind from a host folder taken as a root (the build context): `sub` is resolved inside it,
 * so a symlink in the context cannot reach the rest of the host. */
static void mount_bind_at(const struct record *r) {
  const char *root = r->tok[1], *sub = r->tok[2], *target = r->tok[3];
  int saved = rootfd;
  rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) fail(errno, "mount source %s", root);
  int src = open_in_root(sub, 0);
  if (src < 0) fail(errno, "mount source %s", sub);
  close(rootfd);
  rootfd = saved;
  bind_into(fdpath(src), target, !strcmp(r->tok[4], "ro"), target);
  close(src);
}

static void run_mount_records(const struct spec *s) {
  for (int i = 0; i < s->nrec; i++) {
    const struct record *r = &s->rec[i];
    const char *k = r->tok[0];
    if (!strcmp(k, "bind") && r->n == 4) {
      bind_into(r->tok[1], r->tok[2], !strcmp(r->tok[3], "ro"), r->tok[2]);
    } else if (!strcmp(k, "tmpfs") && r->n == 3) {
      int fd = make_target(r->tok[1], 1);
      do_mount("tmpfs", fd, "tmpfs", MS_NOSUID | MS_NODEV, r->tok[2], r->tok[1]);
      close(fd);
    } else if (!strcmp(k, "file") && r->n == 7) {
      mount_file(s, r, i);
    } else if (!strcmp(k, "bind-at") && r->n == 5) {
      mount_bind_at(r);
    } else if (!strcmp(k, "overlay-at") && r->n == 7) {
      mount_overlay_at(r);
    }
  }
}

void setup_rootfs(const struct spec *s) {
  /* Nothing we mount may propagate back to the host. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail(errno, "make mounts private");
  /* The mount point is shared by every step (each mounts its own tmpfs there, seen only in its
   * namespace); made here too in case a prune removed it. */
  if (mkdir(s->private_dir, 0700) < 0 && errno != EEXIST) fail(errno, "mkdir %s", s->private_dir);
  if (mount("tmpfs", s->private_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=700") < 0) fail(errno, "private tmpfs");
  char rootfs[PATH_MAX];
  snprintf(rootfs, sizeof(rootfs), "%s/root", s->private_dir);
  if (mkdir(rootfs, 0755) < 0) fail(errno, "mkdir %s", rootfs);
  if (s->ovl_cwd && chdir(s->ovl_cwd) < 0) fail(errno, "chdir %s", s->ovl_cwd);
  if (mount("overlay", rootfs, "overlay", 0, s->ovl_data) < 0) fail(errno, "mount the root overlay");
  overlay_mounted();
  timing("overlay");
  rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) fail(errno, "open root");
  mount_proc(s->insecure);
  mount_dev(s);
  mount_sys(s->insecure, s->ncgroups > 0);
  timing("system-mounts");
  run_mount_records(s);
  timing("run-mounts");

  report_stubs = 0;
  int cwd = make_target(s->cwd, 1);
  close(cwd);

  if (chdir(rootfs) < 0) fail(errno, "chdir root");
  if (syscall(SYS_pivot_root, ".", ".") < 0) fail(errno, "pivot_root");
  if (umount2(".", MNT_DETACH) < 0) fail(errno, "detach the old root");
  close(rootfd);
  if (chdir(s->cwd) < 0) fail(errno, "chdir %s", s->cwd);
}
