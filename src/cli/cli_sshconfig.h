/*
 * cli_sshconfig.h - the files `moat ssh` and `moat config-ssh` write for
 * OpenSSH: the managed block in ~/.ssh/config and moat's own known_hosts
 * file holding the gateway's pinned host keys.
 *
 * The managed block is the text from a line starting with CLI_SSHCFG_BEGIN
 * to a line starting with CLI_SSHCFG_END (leading blanks allowed, a CR
 * before the newline ignored). Editing replaces exactly those lines and
 * leaves every other byte of the file as it was. Without a block, the new
 * one goes before the file's first Host or Match line (so that its
 * options come before any "Host *" section: OpenSSH keeps the first value
 * it finds for each option), or at the end when there is none. A new
 * block in a file with CRLF line endings gets CRLF lines too; a block
 * keeps the line endings it was written with. An unbalanced
 * or repeated marker is an error: the file is left alone.
 *
 * Writing (cli_sshcfg_write_file) is atomic (a temporary file in the same
 * directory, fsync, rename, fsync of the directory), keeps the old file's
 * mode (0600 for a new file, in a 0700 directory created when missing),
 * and happens only when the text changes, so a second run with the same
 * workspaces leaves the file untouched. A file that is a symbolic link,
 * not a regular file, owned by another user, or writable by group or
 * others (OpenSSH would refuse it too) is refused with one line naming it,
 * and never overwritten.
 */
#ifndef MOAT_CLI_SSHCONFIG_H
#define MOAT_CLI_SSHCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "errors.h"

#define CLI_SSHCFG_BEGIN \
	"# --- BEGIN moat (managed by moat config-ssh; edits here are replaced) ---"
#define CLI_SSHCFG_END "# --- END moat ---"
#define CLI_SSHCFG_MAX (1024 * 1024)	/* bytes of ~/.ssh/config read */
#define CLI_SSH_HOST_MAX 256

/*
 * Edits text (len bytes, any content; NULL with len 0 for none) so that
 * its managed block holds body: lines ending in "\n" without the
 * markers, or "" for an empty block. body NULL removes the block with its
 * markers. *out (caller frees, NUL-terminated) and *outlen receive the
 * new text. MOAT_ERR_CORRUPT (err says which line) for a BEGIN without an
 * END, an END without a BEGIN, or two blocks; MOAT_ERR_NOMEM.
 */
int cli_sshcfg_edit(const char *text, size_t len, const char *body,
    char **out, size_t *outlen, char *err, size_t errlen) MOAT_MUST_CHECK;

/* The managed block's body (without markers, lines ending in "\n") of
 * text into out (reset first): 1 when there is a block, 0 when none,
 * MOAT_ERR_CORRUPT. */
int cli_sshcfg_block(const char *text, size_t len, struct buf *out)
    MOAT_MUST_CHECK;

/*
 * Reads path for editing: *text (caller frees) and *len, empty when the
 * file does not exist (*mode then 0600). The safety rules above apply:
 * MOAT_ERR_PERM for a link, another owner, group/other write;
 * MOAT_ERR_INVAL not a regular file; MOAT_ERR_TOOBIG over max bytes;
 * MOAT_ERR_IO. err holds one line naming the file.
 */
int cli_sshcfg_read_file(const char *path, size_t max, char **text,
    size_t *len, unsigned *mode, char *err, size_t errlen) MOAT_MUST_CHECK;

/* Writes text to path atomically with mode (see above), creating the
 * parent directory (0700) when missing. */
int cli_sshcfg_write_file(const char *path, const char *text, size_t len,
    unsigned mode, char *err, size_t errlen) MOAT_MUST_CHECK;

/* Reads path, applies cli_sshcfg_edit with body and writes it back when
 * the text changed (*changed). */
int cli_sshcfg_update(const char *path, const char *body, bool *changed,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* ---- what goes into the files ---- */

/* A host name or address from the server, safe on a command line and in
 * ssh_config: 1..255 of [A-Za-z0-9.:_-], not starting with '-'. */
bool cli_ssh_host_ok(const char *host);

/* A host key from the server: "TYPE BASE64" (TYPE of [a-z0-9@.-], BASE64
 * of the base64 alphabet, one space). */
bool cli_ssh_key_ok(const char *key);

/* A login label as the gateway takes it: 1..63 of [a-z0-9-], not starting
 * or ending with '-'. */
bool cli_ssh_label_ok(const char *s);

/* The known_hosts host field for host and port: "HOST" for port 22, else
 * "[HOST]:PORT". MOAT_ERR_TOOBIG when it does not fit. */
int cli_ssh_hostpat(const char *host, long port, char *out, size_t outlen)
    MOAT_MUST_CHECK;

/* A file path as an ssh_config value (also for -o): double-quoted, '%'
 * doubled (OpenSSH expands %-tokens). MOAT_ERR_INVAL for a path with a
 * double quote, "${", a control character or not absolute. */
int cli_ssh_quote_path(const char *path, char *out, size_t outlen)
    MOAT_MUST_CHECK;

/* known_hosts text with every line whose host field is hostpat replaced by
 * one line per key ("HOSTPAT KEY\n"), appended; other lines kept as they
 * are. *out caller frees. */
int cli_known_hosts_edit(const char *text, size_t len, const char *hostpat,
    const char *const *keys, size_t nkeys, char **out, size_t *outlen)
    MOAT_MUST_CHECK;

/* Applies cli_known_hosts_edit to the file path (mode 0600, same safety
 * rules and atomic write as ~/.ssh/config). */
int cli_known_hosts_update(const char *path, const char *hostpat,
    const char *const *keys, size_t nkeys, char *err, size_t errlen)
    MOAT_MUST_CHECK;

/* One Host entry of the managed block. */
struct cli_sshcfg_host {
	const char *alias;	/* "moat-dev" */
	const char *user;	/* the login: "dev" or "ann.dev" */
};

/*
 * The managed block's body for the gateway at host:port whose keys are in
 * known_hosts (a path): a comment line (about, may be NULL: cleaned of
 * control characters), then one Host entry per hosts[i] with HostName,
 * Port, User, UserKnownHostsFile, GlobalKnownHostsFile /dev/null,
 * StrictHostKeyChecking yes and UpdateHostKeys no. Appended to out.
 */
int cli_sshcfg_render(const char *about, const char *host, long port,
    const char *known_hosts, const struct cli_sshcfg_host *hosts, size_t n,
    struct buf *out) MOAT_MUST_CHECK;

#endif
