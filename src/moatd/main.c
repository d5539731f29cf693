/*
 * main.c - moatd, the moat control plane: subcommand dispatch.
 *
 *   moatd init DIR [--force]        create a development data directory
 *   moatd reset-password USER --data-dir DIR   break-glass password reset
 *   moatd backup --data-dir DIR OUT          consistent backup, while running
 *   moatd restore BACKUP --data-dir NEWDIR   a new data directory from it
 *   moatd [serve] --data-dir DIR    run the control plane
 *   moatd ssh-session               one SSH connection (spawned by serve)
 *
 * Each subcommand lives in its own module; main only chooses one.
 */
#include <stdio.h>
#include <string.h>

#include "gateway/gw.h"
#include "identity/reset.h"
#include "secrets/init.h"
#include "secrets/rotate.h"
#include "server/backup.h"
#include "server/serve.h"

#ifndef MOAT_VERSION
#define MOAT_VERSION "0.1.0-dev"
#endif

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: moatd init DIR [--force]\n"
	    "       moatd reset-password USER --data-dir DIR\n"
	    "       moatd rotate-keys --data-dir DIR\n"
	    "       moatd backup --data-dir DIR OUT\n"
	    "       moatd restore BACKUP --data-dir NEWDIR\n"
	    "       moatd [serve] --data-dir DIR [options]   (moatd serve --help)\n"
	    "       moatd config-reference                   (every option, as Markdown)\n"
	    "       moatd --version\n");
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "init") == 0)
		return moatd_init_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "reset-password") == 0)
		return moatd_reset_password_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "rotate-keys") == 0)
		return moatd_rotate_keys_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "backup") == 0)
		return moatd_backup_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "restore") == 0)
		return moatd_restore_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "ssh-session") == 0)
		return moatd_ssh_session_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "serve") == 0)
		return moatd_serve_main(argc - 2, argv + 2);
	if (argc == 2 && strcmp(argv[1], "config-reference") == 0) {
		/* The configuration table as Markdown, for docs/operations.md. */
		config_print_markdown(moatd_serve_keys, moatd_serve_nkeys, stdout);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "--version") == 0 ||
	    strcmp(argv[1], "version") == 0)) {
		printf("moatd %s\n", MOAT_VERSION);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && argv[1][0] != '-') {
		fprintf(stderr, "moatd: unknown command \"%s\"\n", argv[1]);
		usage(stderr);
		return 2;
	}
	return moatd_serve_main(argc - 1, argv + 1);
}
