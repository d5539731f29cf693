/*
 * replay_main.c - runs a libFuzzer target over saved inputs without libFuzzer.
 *
 * Each fuzz target defines LLVMFuzzerTestOneInput. In the sanitizer build of
 * `make test` the targets are linked with this driver instead of libFuzzer, so
 * that every saved input in tests/fuzz/corpus/ is replayed once under ASan and
 * UBSan with any compiler. Arguments are files or directories of inputs.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int
replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL;
	long len;
	int r = -1;

	if (f == NULL) {
		fprintf(stderr, "replay: cannot open %s\n", path);
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		goto out;
	/* One spare byte so an empty input is still a valid pointer. */
	if ((data = malloc((size_t)len + 1)) == NULL)
		goto out;
	if (len > 0 && fread(data, 1, (size_t)len, f) != (size_t)len)
		goto out;
	LLVMFuzzerTestOneInput(data, (size_t)len);
	r = 0;
out:
	free(data);
	fclose(f);
	return r;
}

static int
replay_path(const char *path, int *count)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	char child[4096];
	int r = 0;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "replay: cannot stat %s\n", path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return replay_file(path);
	}
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (snprintf(child, sizeof(child), "%s/%s", path, de->d_name) >=
		    (int)sizeof(child))
			continue;
		if (replay_path(child, count) != 0)
			r = -1;
	}
	closedir(d);
	return r;
}

int
main(int argc, char **argv)
{
	int count = 0, r = 0;

	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++)
		if (replay_path(argv[i], &count) != 0)
			r = 1;
	printf("replayed %d inputs\n", count);
	return r;
}
