/* replay.c: a main() for a harness built without libFuzzer (gcc -fsanitize=address,undefined;
 * `make fuzz-replay`): each file named on the command line is read and given to
 * LLVMFuzzerTestOneInput once, in a child process of its own, so one crashing input is
 * reported and the others still run. Prints "FAIL FILE" per failure and ends with
 * "NAME: N passed, N failed"; exits 1 when any failed. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the regular file path whole (malloc'd into *out), or returns false. */
static bool slurp(const char *path, uint8_t **out, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  uint8_t *buf = n >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc(n ? (size_t)n : 1) : NULL;
  bool ok = buf && fread(buf, 1, (size_t)n, f) == (size_t)n;
  fclose(f);
  if (!ok) {
    free(buf);
    return false;
  }
  *out = buf;
  *size = (size_t)n;
  return true;
}

static bool replay(const char *path) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    uint8_t *data;
    size_t size;
    if (!slurp(path, &data, &size)) {
      fprintf(stderr, "replay: cannot read %s\n", path);
      _exit(2);
    }
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    _exit(0);
  }
  int status;
  return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(int argc, char **argv) {
  int passed = 0, failed = 0;
  for (int i = 1; i < argc; i++) {
    if (replay(argv[i])) {
      passed++;
    } else {
      failed++;
      printf("FAIL %s\n", argv[i]);
    }
  }
  printf("%s: %d passed, %d failed\n", argv[0], passed, failed);
  return failed ? 1 : 0;
}
