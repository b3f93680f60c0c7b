/* Test helper: SIGKILL the process just before its K-th low-level write (write/pwrite) to a
 * file whose path ends with KILLWRITE_SUFFIX (default ".h5"), to reach the middle of HDF5
 * flushes that API-level write points cannot. Loaded with LD_PRELOAD by
 * tests/test_crash_flush.py and tests/test_faults_switch.py. KILLWRITE_AT=K arms it; KILLWRITE_COUNT=FILE records
 * the count. The count is per process: a forked child starts from zero (a preloaded driver forks one child per
 * kill point and sets the variables in the child). With KILLWRITE_COUNT, KILLWRITE_LOG=FILE also appends one line
 * per counted write: "K OFFSET LENGTH JOURNAL" (OFFSET -1 for write(); JOURNAL 1 while the file's
 * ".switch-journal" exists), so a sweep can tell the phases of a command's writes apart. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/stat.h>
static long seen = 0;
static pid_t counted = 0;
static char path[4096];  /* the file of the write being counted */
static int is_h5(int fd) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    const char *want = getenv("KILLWRITE_SUFFIX");
    if (!want) want = ".h5";
    size_t lw = strlen(want);
    return (size_t)n >= lw && strcmp(path + n - lw, want) == 0;
}
static void log_write(long long offset, size_t count) {
    const char *l = getenv("KILLWRITE_LOG");
    char journal[4200];
    struct stat info;
    if (!l) return;
    snprintf(journal, sizeof journal, "%s.switch-journal", path);
    int journaled = stat(journal, &info) == 0;
    FILE *f = fopen(l, "a");
    if (f) { fprintf(f, "%ld %lld %zu %d\n", seen, offset, count, journaled); fclose(f); }
}
static void point(int fd, long long offset, size_t count) {
    const char *k = getenv("KILLWRITE_AT");
    const char *c = getenv("KILLWRITE_COUNT");
    if (!k && !c) return;
    if (!is_h5(fd)) return;
    if (counted != getpid()) { counted = getpid(); seen = 0; }
    seen++;
    if (c) { FILE *f = fopen(c, "w"); if (f) { fprintf(f, "%ld\n", seen); fclose(f); } log_write(offset, count); }
    if (k && seen == atol(k)) kill(getpid(), SIGKILL);
}
ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "pwrite");
    point(fd, (long long)offset, count);
    return real(fd, buf, count, offset);
}
ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "pwrite64");
    point(fd, (long long)offset, count);
    return real(fd, buf, count, offset);
}
ssize_t write(int fd, const void *buf, size_t count) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = dlsym(RTLD_NEXT, "write");
    point(fd, -1, count);
    return real(fd, buf, count);
}
