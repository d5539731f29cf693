/*
 * main.c - moatd, the moat control plane: command dispatch.
 */
#include <stdio.h>
#include <string.h>

int
main(int argc, char **argv)
{
	fprintf(stderr, "usage: moatd init DIR | moatd --data-dir DIR\n");
	return argc > 1 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
