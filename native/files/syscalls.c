// The host calls kiln makes through koffi whose failures it tells apart by errno (a missing
// xattr, a lock held elsewhere). Each returns -errno on failure, read here right after the
// call: koffi's errno() reads the thread's errno later, after the engine has run in between,
// and V8 sets it itself (an madvise of a freed page leaves ENOMEM), so a missing xattr once
// came back as "errno 12".

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>

static intptr_t result(intptr_t r) { return r < 0 ? -(intptr_t)errno : r; }

intptr_t kiln_lgetxattr(const char *path, const char *name, void *value, size_t size) {
  return result(lgetxattr(path, name, value, size));
}

intptr_t kiln_llistxattr(const char *path, char *list, size_t size) { return result(llistxattr(path, list, size)); }

intptr_t kiln_lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags) {
  return result(lsetxattr(path, name, value, size, flags));
}

intptr_t kiln_lremovexattr(const char *path, const char *name) { return result(lremovexattr(path, name)); }

intptr_t kiln_mknod(const char *path, uint32_t mode, uint64_t dev) { return result(mknod(path, mode, dev)); }

intptr_t kiln_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data) {
  return result(mount(source, target, fstype, flags, data));
}

intptr_t kiln_umount2(const char *target, int flags) { return result(umount2(target, flags)); }

intptr_t kiln_flock(int fd, int operation) { return result(flock(fd, operation)); }

intptr_t kiln_rename_noreplace(const char *from, const char *to) {
  return result(renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE));
}
