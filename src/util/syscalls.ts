// Host calls Node lacks, bound with koffi: extended attributes on the link itself (never
// following a symlink), mknod for overlay whiteouts and device nodes, mount, umount2 and flock,
// copy_file_range for a layer's shared head, and the inode flag that spreads the store's staging
// folders over the disk. Calls whose failures are told apart by errno go through kiln's own
// library (native/files/syscalls.c), which returns -errno: errno read from JavaScript after the
// call is whatever the engine left in it since.

import { closeSync, constants, openSync } from 'node:fs';
import { loadKoffi, type NativeFunction } from './koffi.js';
import { NATIVE_FILES_PATH } from './native-files.js';

interface Bindings {
  lgetxattr: NativeFunction;
  llistxattr: NativeFunction;
  lsetxattr: NativeFunction;
  lremovexattr: NativeFunction;
  mknod: NativeFunction;
  mount: NativeFunction;
  umount2: NativeFunction;
  flock: NativeFunction;
  renameNoReplace: NativeFunction;
  ioctl: NativeFunction;
  copy_file_range: NativeFunction;
}

let bound: Bindings | undefined;

/**
 * koffi and the libraries are loaded on the first call, not at import: loading them costs
 * 20-50 ms here, and a fully cached build, `kiln images` and the like never make one of these calls.
 */
function native(): Bindings {
  if (bound) return bound;
  const koffi = loadKoffi();
  let own;
  try {
    own = koffi.load(NATIVE_FILES_PATH());
  } catch (e) {
    throw new Error(`kiln's native library is missing (${(e as Error).message}): run npm run build`);
  }
  const libc = koffi.load('libc.so.6');
  bound = {
    lgetxattr: own.func('intptr_t kiln_lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, uintptr_t size)'),
    llistxattr: own.func('intptr_t kiln_llistxattr(const char *path, _Out_ uint8_t *list, uintptr_t size)'),
    lsetxattr: own.func('intptr_t kiln_lsetxattr(const char *path, const char *name, const uint8_t *value, uintptr_t size, int flags)'),
    lremovexattr: own.func('intptr_t kiln_lremovexattr(const char *path, const char *name)'),
    mknod: own.func('intptr_t kiln_mknod(const char *path, uint32_t mode, uint64_t dev)'),
    // For host-side cleanup and RUN --mount=type=cache locks; the sandbox helper mounts in C.
    mount: own.func('intptr_t kiln_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    umount2: own.func('intptr_t kiln_umount2(const char *target, int flags)'),
    flock: own.func('intptr_t kiln_flock(int fd, int operation)'),
    renameNoReplace: own.func('intptr_t kiln_rename_noreplace(const char *from, const char *to)'),
    // These two only ever succeed or fail, whatever the errno: libc's own are enough.
    // Only FS_IOC_GETFLAGS/SETFLAGS, whose argument the kernel reads and writes as 32 bits.
    ioctl: libc.func('int ioctl(int fd, unsigned long request, _Inout_ uint32_t *arg)'),
    // Offsets passed by pointer (8-byte buffers), so the files' own offsets are left alone.
    copy_file_range: libc.func('intptr_t copy_file_range(int fd_in, _Inout_ int64_t *off_in, int fd_out, _Inout_ int64_t *off_out, uintptr_t len, unsigned int flags)'),
  };
  return bound;
}

/** A call's result: its value when it succeeded, else the errno it failed with (negated). */
function call(fn: NativeFunction, ...args: unknown[]): number {
  return Number(fn(...args));
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 13: 'EACCES', 17: 'EEXIST', 22: 'EINVAL', 28: 'ENOSPC', 34: 'ERANGE',
  61: 'ENODATA', 95: 'EOPNOTSUPP', 30: 'EROFS', 7: 'E2BIG', 12: 'ENOMEM', 16: 'EBUSY', 11: 'EAGAIN', 20: 'ENOTDIR', 9: 'EBADF',
  5: 'EIO', 18: 'EXDEV', 21: 'EISDIR', 31: 'EMLINK', 36: 'ENAMETOOLONG', 39: 'ENOTEMPTY', 40: 'ELOOP', 122: 'EDQUOT',
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

/** Throws for a call that returned -errno. */
function fail(syscall: string, negErrno: number, path: HostPath): never {
  throw new SyscallError(syscall, -negErrno, String(path));
}

/**
 * A path as Node's fs takes it: a string, or the bytes of one that is not UTF-8 (a file a RUN
 * step named in Latin-1, say), which no JavaScript string can stand for.
 */
export type HostPath = string | Buffer;

/** The path as a C string argument: koffi takes a Buffer as the bytes, so it needs its NUL. */
function cPath(path: HostPath): string | Buffer {
  return typeof path === 'string' ? path : Buffer.concat([path, Buffer.alloc(1)]);
}

/** Names of the extended attributes on `path` itself (a symlink is not followed). */
export function listXattrs(path: HostPath): string[] {
  const c = cPath(path);
  for (;;) {
    const size = call(native().llistxattr, c, null, 0);
    if (size < 0) {
      if (size === -95) return []; // the filesystem has no xattrs at all
      fail('llistxattr', size, path);
    }
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = call(native().llistxattr, c, buf, size);
    if (got < 0) {
      if (got === -34) continue; // grew between the two calls
      fail('llistxattr', got, path);
    }
    return buf
      .subarray(0, got)
      .toString('latin1')
      .split('\0')
      .filter((n) => n.length > 0);
  }
}

/** The attribute's raw bytes, or undefined when it is not set. */
export function getXattr(path: HostPath, name: string): Buffer | undefined {
  const c = cPath(path);
  for (;;) {
    const size = call(native().lgetxattr, c, name, null, 0);
    if (size < 0) {
      if (size === -61 || size === -95) return undefined;
      fail('lgetxattr', size, path);
    }
    const buf = Buffer.alloc(size);
    if (size === 0) return buf;
    const got = call(native().lgetxattr, c, name, buf, size);
    if (got < 0) {
      if (got === -34) continue;
      fail('lgetxattr', got, path);
    }
    return buf.subarray(0, got);
  }
}

export function setXattr(path: HostPath, name: string, value: Uint8Array): void {
  const r = call(native().lsetxattr, cPath(path), name, value, value.byteLength, 0);
  if (r < 0) fail('lsetxattr', r, path);
}

export function removeXattr(path: string, name: string): void {
  const r = call(native().lremovexattr, path, name);
  if (r < 0 && r !== -61) fail('lremovexattr', r, path);
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

export function mknod(path: HostPath, mode: number, major = 0, minor = 0): void {
  const r = call(native().mknod, cPath(path), mode, makedev(major, minor));
  if (r < 0) fail('mknod', r, path);
}

/** An overlayfs whiteout: a character device 0/0. */
export function makeWhiteout(path: HostPath): void {
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
  const r = call(native().mount, source, target, fstype, flags, data);
  if (r < 0) fail('mount', r, target);
}

export function umount2(target: string, flags = 0): void {
  const r = call(native().umount2, target, flags);
  if (r < 0) fail('umount2', r, target);
}

/** flock(2) on an open fd. With LOCK_NB, returns false when another holder has the lock. */
export function flock(fd: number, operation: number): boolean {
  const r = call(native().flock, fd, operation);
  if (r >= 0) return true;
  if (r === -EWOULDBLOCK && (operation & LOCK_NB) !== 0) return false;
  throw new SyscallError('flock', -r, `fd ${fd}`);
}

// ---------------------------------------------------------------- rename without replacing

const EEXIST = 17;
const EINVAL = 22;

/**
 * Renames `from` to `to` unless something is at `to`: false then. A plain rename replaces an
 * empty folder, so two processes that both stage a new folder would each think theirs won, and
 * the first one's folder, already in use, would vanish. Undefined when the file system cannot
 * refuse (renameat2 flags unsupported): the caller decides what to do.
 */
export function renameNoReplace(from: string, to: string): boolean | undefined {
  const r = call(native().renameNoReplace, from, to);
  if (r >= 0) return true;
  if (r === -EEXIST) return false;
  if (r === -EINVAL) return undefined;
  throw new SyscallError('rename', -r, `${from} -> ${to}`);
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
