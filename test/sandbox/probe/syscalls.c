/* Test probe, built statically by the isolation tests and run as PID 1 inside the sandbox:
 * calls each syscall Docker's default seccomp profile refuses and prints "name errno-name".
 * Inside kiln's sandbox every line must say EPERM (the filter answers before the kernel looks
 * at the arguments). The arguments are chosen so that outside a sandbox each call fails
 * harmlessly too (bad paths, bad flags), and the probe refuses to run unless it is PID 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

static void probe(const char *name, long rc) {
  printf("%s %s\n", name, rc < 0 ? strerrorname_np(errno) : "OK");
}

#define NOWHERE "/kiln-probe-nonexistent/x"

int main(void) {
  if (getpid() != 1) {
    fputs("syscall probe: only runs as PID 1 of a sandbox\n", stderr);
    return 2;
  }
  probe("mount", syscall(SYS_mount, "none", NOWHERE, "tmpfs", 0, NULL));
  probe("umount2", syscall(SYS_umount2, NOWHERE, MNT_DETACH));
  probe("pivot_root", syscall(SYS_pivot_root, NOWHERE, NOWHERE));
  probe("unshare-user", syscall(SYS_unshare, CLONE_NEWUSER));
  probe("unshare-ns", syscall(SYS_unshare, CLONE_NEWNS));
  long c = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
  if (c == 0) _exit(0);
  probe("clone-newuser", c);
  probe("setns", syscall(SYS_setns, -1, CLONE_NEWNET));
  probe("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL));
  probe("init_module", syscall(SYS_init_module, NULL, 0, ""));
  probe("finit_module", syscall(SYS_finit_module, -1, "", 0));
  probe("delete_module", syscall(SYS_delete_module, "kiln_probe_nonexistent", 0));
  probe("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
  probe("swapon", syscall(SYS_swapon, NOWHERE, 0));
  probe("bpf", syscall(SYS_bpf, -1, NULL, 0));
  probe("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
  probe("keyctl", syscall(SYS_keyctl, -1, 0, 0, 0, 0));
  probe("add_key", syscall(SYS_add_key, "kiln-probe-bogus", "k", "v", 1, 0));
  probe("request_key", syscall(SYS_request_key, "kiln-probe-bogus", "k", NULL, 0));
  probe("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0));
  probe("userfaultfd", syscall(SYS_userfaultfd, -1));
  probe("acct", syscall(SYS_acct, NOWHERE));
  probe("process_vm_readv", syscall(SYS_process_vm_readv, 0, NULL, 0, NULL, 0, 0));
  return 0;
}
