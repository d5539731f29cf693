/*
 * main.c - moat, the command-line client: subcommand dispatch.
 */
#include <stdio.h>
#include <string.h>

int
main(int argc, char **argv)
{
	fprintf(stderr, "usage: moat audit verify FILE\n");
	return argc > 1 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
