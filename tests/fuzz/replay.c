/*
 * replay.c: run fuzz inputs through a fuzz target without libFuzzer.
 *
 * Usage: fuzz_replay_KIND DIR...; every regular file in each directory
 * (dot files skipped) is read and passed to LLVMFuzzerTestOneInput. A crash
 * or abort fails the ctest test, so every input a fuzzer once crashed on,
 * saved under tests/fuzz/regressions/KIND/, stays a regression test.
 * Files are bounded to 1 MiB + 1 byte (enough to exercise the size cap).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PB_REPLAY_MAX (1024 * 1024 + 1)

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return 1;
	}
	uint8_t *buf = malloc(PB_REPLAY_MAX);
	if (!buf) {
		fclose(f);
		return 1;
	}
	size_t n = fread(buf, 1, PB_REPLAY_MAX, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int files = 0, rc = 0;
	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		if (!d) {
			perror(argv[i]);
			return 1;
		}
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", argv[i],
				 e->d_name);
			rc |= run_file(path);
			files++;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", files);
	return rc;
}
