// Host calls Node lacks, bound with koffi to the system libc: extended attributes on the link
// itself (never following a symlink), mknod for overlay whiteouts and device nodes, mount,
// umount2 and flock, copy_file_range for a layer's shared head, and the inode flag that spreads
// the store's staging folders over the disk. Keep one libc handle.

import { closeSync, constants, openSync } from 'node:fs';
import { loadKoffi, type Koffi, type NativeFunction } from './koffi.js';

interface Bindings {
  koffi: Koffi;
  lgetxattr: NativeFunction;
  llistxattr: NativeFunction;
  lsetxattr: NativeFunction;
  lremovexattr: NativeFunction;
  mknod: NativeFunction;
  mount: NativeFunction;
  umount2: NativeFunction;
  flock: NativeFunction;
  ioctl: NativeFunction;
  copy_file_range: NativeFunction;
}

let bound: Bindings | undefined;

/**
 * koffi and libc are loaded on the first call, not at import: loading them costs 20-50 ms
 * here, and a fully cached build, `kiln images` and the like never make one of these calls.
 */
function native(): Bindings {
  if (bound) return bound;
  const koffi = loadKoffi();
  const libc = koffi.load('libc.so.6');
  bound = {
    koffi,
    lgetxattr: libc.func('intptr_t lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, uintptr_t size)'),
    llistxattr: libc.func('intptr_t llistxattr(const char *path, _Out_ uint8_t *list, uintptr_t size)'),
    lsetxattr: libc.func('int lsetxattr(const char *path, const char *name, const uint8_t *value, uintptr_t size, int flags)'),
    lremovexattr: libc.func('int lremovexattr(const char *path, const char *name)'),
    mknod: libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
    // For host-side cleanup and RUN --mount=type=cache locks; the sandbox helper mounts in C.
    mount: libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    umount2: libc.func('int umount2(const char *target, int flags)'),
    flock: libc.func('int flock(int fd, int operation)'),
    // Only FS_IOC_GETFLAGS/SETFLAGS, whose argument the kernel reads and writes as 32 bits.
    ioctl: libc.func('int ioctl(int fd, unsigned long request, _Inout_ uint32_t *arg)'),
    // Offsets passed by pointer (8-byte buffers), so the files' own offsets are left alone.
    copy_file_range: libc.func('intptr_t copy_file_range(int fd_in, _Inout_ int64_t *off_in, int fd_out, _Inout_ int64_t *off_out, uintptr_t len, unsigned int flags)'),
  };
  return bound;
}

function errno(): number {
  return native().koffi.errno();
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 13: 'EACCES', 17: 'EEXIST', 22: 'EINVAL', 28: 'ENOSPC', 34: 'ERANGE',
  61: 'ENODATA', 95: 'EOPNOTSUPP', 30: 'EROFS', 7: 'E2BIG',
};

export class SyscallError extends Error {
  constructor(
    readonly syscall: string,
    readonly errno: number,
    readonly path: string,
  ) {
    const code = ERRNO_NAMES[errno] ?? `errno ${errno}`;
    super(`${syscall} ${path}: ${code}`);
    this.name = 'SyscallError';
  }
  get code(): string {
    return ERRNO_NAMES[this.errno] ?? `E${this.errno}`;
  }
}

function fail(syscall: string, path: string): never {
  throw new SyscallError(syscall, errno(), path);
}

/** Names of the extended attributes on `path` itself (a symlink is not followed). */
export function listXattrs(path: string): string[] {
  for (;;) {
    const size = Number(native().llistxattr(path, null, 0));
    if (size < 0) {
      const e = errno();
      if (e === 95) return []; // the filesystem has no xattrs at all
      fail('llistxattr', path);
    }
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = Number(native().llistxattr(path, buf, size));
    if (got < 0) {
      if (errno() === 34) continue; // grew between the two calls
      fail('llistxattr', path);
    }
    return buf
      .subarray(0, got)
      .toString('latin1')
      .split('\0')
      .filter((n) => n.length > 0);
  }
}

/** The attribute's raw bytes, or undefined when it is not set. */
export function getXattr(path: string, name: string): Buffer | undefined {
  for (;;) {
    const size = Number(native().lgetxattr(path, name, null, 0));
    if (size < 0) {
      const e = errno();
      if (e === 61 || e === 95) return undefined;
      fail('lgetxattr', path);
    }
    const buf = Buffer.alloc(size);
    if (size === 0) return buf;
    const got = Number(native().lgetxattr(path, name, buf, size));
    if (got < 0) {
      if (errno() === 34) continue;
      fail('lgetxattr', path);
    }
    return buf.subarray(0, got);
  }
}

export function setXattr(path: string, name: string, value: Uint8Array): void {
  if (native().lsetxattr(path, name, value, value.byteLength, 0) !== 0) fail('lsetxattr', path);
}

export function removeXattr(path: string, name: string): void {
  if (native().lremovexattr(path, name) !== 0) {
    if (errno() === 61) return;
    fail('lremovexattr', path);
  }
}

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

/** Linux's dev_t encoding (glibc makedev). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

export function devMajor(dev: number): number {
  const d = BigInt(dev);
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
}

export function devMinor(dev: number): number {
  const d = BigInt(dev);
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
}

export function mknod(path: string, mode: number, major = 0, minor = 0): void {
  if (native().mknod(path, mode, makedev(major, minor)) !== 0) fail('mknod', path);
}

/** An overlayfs whiteout: a character device 0/0. */
export function makeWhiteout(path: string): void {
  mknod(path, S_IFCHR | 0o000, 0, 0);
}

// ---------------------------------------------------------------- mount, umount2, flock

export const MNT_DETACH = 2;
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
const EWOULDBLOCK = 11;

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void {
  if (native().mount(source, target, fstype, flags, data) !== 0) fail('mount', target);
}

export function umount2(target: string, flags = 0): void {
  if (native().umount2(target, flags) !== 0) fail('umount2', target);
}

/** flock(2) on an open fd. With LOCK_NB, returns false when another holder has the lock. */
export function flock(fd: number, operation: number): boolean {
  if (native().flock(fd, operation) === 0) return true;
  const e = errno();
  if (e === EWOULDBLOCK && (operation & LOCK_NB) !== 0) return false;
  throw new SyscallError('flock', e, `fd ${fd}`);
}

// ---------------------------------------------------------------- copy_file_range

/**
 * Copies `length` bytes at `from` of `fdIn` to `to` of `fdOut` inside the kernel, on a
 * thread-pool thread. Resolves to how many bytes it copied: fewer when the kernel refuses or
 * the input ends, and the caller copies the rest itself.
 */
export async function copyFileRange(fdIn: number, from: number, fdOut: number, to: number, length: number): Promise<number> {
  const f = native().copy_file_range;
  let done = 0;
  while (done < length) {
    const offIn = [BigInt(from + done)];
    const offOut = [BigInt(to + done)];
    const n = await new Promise<number>((resolve) => {
      f.async(fdIn, offIn, fdOut, offOut, length - done, 0, (err: unknown, got: number | bigint) => resolve(err ? -1 : Number(got)));
    });
    if (n <= 0) break;
    done += n;
  }
  return done;
}

// ---------------------------------------------------------------- inode flags

const FS_IOC_GETFLAGS = 0x80086601;
const FS_IOC_SETFLAGS = 0x40086602;
const FS_TOPDIR_FL = 0x00020000;

/**
 * Sets the "top of a directory hierarchy" flag (chattr +T) on a directory, so that ext4 places
 * each new subdirectory in a little-used block group rather than beside its parent. False when
 * the filesystem has no such flag or refuses it: it is a placement hint, never required.
 */
export function markTopDirectory(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch {
    return false;
  }
  try {
    const flags = [0];
    if (native().ioctl(fd, FS_IOC_GETFLAGS, flags) !== 0) return false;
    if ((flags[0]! & FS_TOPDIR_FL) !== 0) return true;
    return native().ioctl(fd, FS_IOC_SETFLAGS, [flags[0]! | FS_TOPDIR_FL]) === 0;
  } finally {
    closeSync(fd);
  }
}
