/* Test helper: SIGKILL the process just before its K-th low-level write (write/pwrite) to a
 * file whose path ends with KILLWRITE_SUFFIX (default ".h5"), to reach the middle of HDF5
 * flushes that API-level write points cannot. Loaded with LD_PRELOAD by
 * tests/test_crash_flush.py and tests/test_faults_switch.py. KILLWRITE_AT=K arms it; KILLWRITE_COUNT=FILE records
 * the count. The count is per process: a forked child starts from zero (a preloaded driver forks one child per
 * kill point and sets the variables in the child). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/types.h>
static long seen = 0;
static pid_t counted = 0;
static int is_h5(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    const char *want = getenv("KILLWRITE_SUFFIX");
    if (!want) want = ".h5";
    size_t lw = strlen(want);
    return (size_t)n >= lw && strcmp(path + n - lw, want) == 0;
}
static void point(int fd) {
    const char *k = getenv("KILLWRITE_AT");
    const char *c = getenv("KILLWRITE_COUNT");
    if (!k && !c) return;
    if (!is_h5(fd)) return;
    if (counted != getpid()) { counted = getpid(); seen = 0; }
    seen++;
    if (c) { FILE *f = fopen(c, "w"); if (f) { fprintf(f, "%ld\n", seen); fclose(f); } }
    if (k && seen == atol(k)) kill(getpid(), SIGKILL);
}
ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "pwrite");
    point(fd);
    return real(fd, buf, count, offset);
}
ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "pwrite64");
    point(fd);
    return real(fd, buf, count, offset);
}
ssize_t write(int fd, const void *buf, size_t count) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = dlsym(RTLD_NEXT, "write");
    point(fd);
    return real(fd, buf, count);
}
