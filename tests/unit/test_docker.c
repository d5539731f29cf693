/*
 * test_docker.c - unit tests for the Docker driver (drivers/docker).
 *
 * Always run: the object name, the socket path rules (DOCKER_HOST only
 * unix://), the create body, the image reference split, the registry auth
 * header, and the parsers of the runtime's answers (inspect, list, stats,
 * pull progress, errors) on real Podman answers and on hostile ones.
 *
 * Against a real runtime, when MOAT_TEST_DOCKER_SOCK names its socket
 * (tests/e2e/test_driver.py starts a private `podman system service` and
 * runs this binary): create, start, inspect running (the forced user
 * namespace range seen in /proc/PID/uid_map, what the container itself
 * reports about its mounts, root, network, capabilities), stats, stop,
 * inspect exited, list_owned, remove, the same range after re-creation,
 * inspect absent, create twice -> EXISTS, an absent image, a refused
 * setting. With MOAT_TEST_PULL_IMAGE/_USER/_PASS (an image on a registry
 * with htpasswd auth): pull after removing the local copy, wrong
 * credentials refused, progress reported. MOAT_TEST_DOCKER_IMAGE names the
 * local image to run (default localhost/moat/base:latest). Containers are
 * named moat-drvtest-<pid>-*, removed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "drivers/docker/docker.h"
#include "drivers/docker/docker_int.h"

/* ------------------------------------------------------------ no runtime */

static void
test_object_name(void **state)
{
	char out[80], small[8];

	(void)state;
	assert_int_equal(driver_object_name("ws-1_a.b", out, sizeof(out)), 0);
	assert_string_equal(out, "moat-ws-1_a.b");
	assert_int_equal(driver_object_name("", out, sizeof(out)),
	    MOAT_ERR_INVAL);
	assert_int_equal(driver_object_name(NULL, out, sizeof(out)),
	    MOAT_ERR_INVAL);
	assert_int_equal(driver_object_name("-x", out, sizeof(out)),
	    MOAT_ERR_INVAL);
	assert_int_equal(driver_object_name("a/b", out, sizeof(out)),
	    MOAT_ERR_INVAL);
	assert_int_equal(driver_object_name("a?b", out, sizeof(out)),
	    MOAT_ERR_INVAL);
	assert_int_equal(driver_object_name("a b", out, sizeof(out)),
	    MOAT_ERR_INVAL);
	assert_int_equal(driver_object_name(
	    "0123456789012345678901234567890123456789012345678901234567890123x",
	    out, sizeof(out)), MOAT_ERR_INVAL);
	assert_int_equal(driver_object_name("abcdef", small, sizeof(small)),
	    MOAT_ERR_TOOBIG);
	assert_string_equal(small, "");
}

static void
test_socket_path(void **state)
{
	char out[108], err[256];
	int r;

	(void)state;
	assert_int_equal(docker_socket_path("unix:///tmp/x.sock", out,
	    sizeof(out), err, sizeof(err)), 0);
	assert_string_equal(out, "/tmp/x.sock");
	err[0] = '\0';
	assert_int_equal(docker_socket_path("tcp://127.0.0.1:2375", out,
	    sizeof(out), err, sizeof(err)), MOAT_ERR_UNSUPPORTED);
	assert_non_null(strstr(err, "unix://"));
	assert_string_equal(out, "");
	assert_int_equal(docker_socket_path("ssh://h", out, sizeof(out), err,
	    sizeof(err)), MOAT_ERR_UNSUPPORTED);
	assert_int_equal(docker_socket_path("/run/x.sock", out, sizeof(out),
	    err, sizeof(err)), MOAT_ERR_UNSUPPORTED);
	assert_int_equal(docker_socket_path("unix://", out, sizeof(out), err,
	    sizeof(err)), MOAT_ERR_INVAL);
	assert_int_equal(docker_socket_path("unix://rel.sock", out,
	    sizeof(out), err, sizeof(err)), MOAT_ERR_INVAL);
	{
		char longp[300];

		memcpy(longp, "unix:///", 8);
		memset(longp + 8, 'a', 200);
		longp[208] = '\0';
		assert_int_equal(docker_socket_path(longp, out, sizeof(out),
		    err, sizeof(err)), MOAT_ERR_TOOBIG);
	}
	/* No DOCKER_HOST: one of the usual sockets, or a clear error. */
	err[0] = '\0';
	r = docker_socket_path(NULL, out, sizeof(out), err, sizeof(err));
	if (r == 0) {
		assert_true(strcmp(out, "/run/podman/podman.sock") == 0 ||
		    strcmp(out, "/var/run/docker.sock") == 0);
	} else {
		assert_int_equal(r, MOAT_ERR_NOTFOUND);
		assert_non_null(strstr(err, "/run/podman/podman.sock"));
		assert_non_null(strstr(err, "/var/run/docker.sock"));
	}
}

static void
test_driver_new_refusals(void **state)
{
	struct driver *d = (struct driver *)1;
	char err[256], sock[64];
	const char *old = getenv("DOCKER_HOST");
	char *saved = old != NULL ? strdup(old) : NULL;

	(void)state;
	setenv("DOCKER_HOST", "tcp://127.0.0.1:2375", 1);
	err[0] = '\0';
	assert_int_equal(docker_driver_new(&d, NULL, err, sizeof(err)),
	    MOAT_ERR_UNSUPPORTED);
	assert_null(d);
	assert_non_null(strstr(err, "DOCKER_HOST"));
	/* A socket path where nothing listens: unreachable. */
	snprintf(sock, sizeof(sock), "/tmp/moat-drvtest-%d.none", (int)getpid());
	setenv("DOCKER_HOST", "unix:///nonexistent/moat-drvtest.sock", 1);
	assert_int_equal(docker_driver_new(&d, NULL, err, sizeof(err)),
	    MOAT_ERR_IO);
	assert_null(d);
	assert_non_null(strstr(err, "/nonexistent/moat-drvtest.sock"));
	assert_int_equal(docker_driver_new(&d, sock, err, sizeof(err)),
	    MOAT_ERR_IO);
	assert_null(d);
	if (saved != NULL)
		setenv("DOCKER_HOST", saved, 1);
	else
		unsetenv("DOCKER_HOST");
	free(saved);
}

static void
test_image_split(void **state)
{
	char from[256], tag[256], reg[256];

	(void)state;
	assert_int_equal(docker__image_split("localhost/moat/base:latest",
	    from, sizeof(from), tag, sizeof(tag), reg, sizeof(reg)), 0);
	assert_string_equal(from, "localhost/moat/base");
	assert_string_equal(tag, "latest");
	assert_string_equal(reg, "localhost");
	assert_int_equal(docker__image_split("127.0.0.1:5000/a/b", from,
	    sizeof(from), tag, sizeof(tag), reg, sizeof(reg)), 0);
	assert_string_equal(from, "127.0.0.1:5000/a/b");
	assert_string_equal(tag, "latest");
	assert_string_equal(reg, "127.0.0.1:5000");
	assert_int_equal(docker__image_split("debian:12", from, sizeof(from),
	    tag, sizeof(tag), reg, sizeof(reg)), 0);
	assert_string_equal(from, "debian");
	assert_string_equal(tag, "12");
	assert_string_equal(reg, "docker.io");
	assert_int_equal(docker__image_split("library/debian:12", from,
	    sizeof(from), tag, sizeof(tag), reg, sizeof(reg)), 0);
	assert_string_equal(reg, "docker.io");
	assert_int_equal(docker__image_split("r.example/x@sha256:"
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    from, sizeof(from), tag, sizeof(tag), reg, sizeof(reg)), 0);
	assert_string_equal(from, "r.example/x");
	assert_string_equal(tag, "sha256:0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef");
	assert_string_equal(reg, "r.example");
	assert_int_equal(docker__image_split("a b", from, sizeof(from), tag,
	    sizeof(tag), reg, sizeof(reg)), MOAT_ERR_INVAL);
	assert_int_equal(docker__image_split("x?y=1", from, sizeof(from), tag,
	    sizeof(tag), reg, sizeof(reg)), MOAT_ERR_INVAL);
	assert_int_equal(docker__image_split("/x", from, sizeof(from), tag,
	    sizeof(tag), reg, sizeof(reg)), MOAT_ERR_INVAL);
	assert_int_equal(docker__image_split("x:", from, sizeof(from), tag,
	    sizeof(tag), reg, sizeof(reg)), MOAT_ERR_INVAL);
	assert_int_equal(docker__image_split(":x", from, sizeof(from), tag,
	    sizeof(tag), reg, sizeof(reg)), MOAT_ERR_INVAL);
	assert_int_equal(docker__image_split("x@", from, sizeof(from), tag,
	    sizeof(tag), reg, sizeof(reg)), MOAT_ERR_INVAL);
	assert_int_equal(docker__image_split("%2e%2e", from, sizeof(from),
	    tag, sizeof(tag), reg, sizeof(reg)), MOAT_ERR_INVAL);
}

static void
test_auth_header(void **state)
{
	char *h = NULL;
	unsigned char bin[512];
	size_t binlen;
	json_t *o;
	struct drv_auth a = { .username = "alice", .password = "s3cr\"t" };

	(void)state;
	assert_true(sodium_init() >= 0);
	assert_int_equal(docker__auth_header(&a, "127.0.0.1:5000", &h), 0);
	assert_non_null(h);
	/* base64url: no '+' or '/'. */
	assert_null(strpbrk(h, "+/"));
	assert_int_equal(sodium_base642bin(bin, sizeof(bin), h, strlen(h),
	    NULL, &binlen, NULL, sodium_base64_VARIANT_URLSAFE), 0);
	o = json_loadb((const char *)bin, binlen, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "username")),
	    "alice");
	assert_string_equal(json_string_value(json_object_get(o, "password")),
	    "s3cr\"t");
	assert_string_equal(json_string_value(json_object_get(o,
	    "serveraddress")), "127.0.0.1:5000");
	json_decref(o);
	free(h);
	a.password = NULL;
	assert_int_equal(docker__auth_header(&a, "x", &h), MOAT_ERR_INVAL);
	assert_null(h);
}

static const char *const test_args[] = { "-c", "sleep 1", NULL };
static const char *const test_env[] = { "A=1", "PATH=/bin", NULL };
static const char *const test_caps[] = { "CHOWN", "SETUID", NULL };

static void
spec_init(struct drv_spec *s, struct drv_mount *m, struct drv_tmpfs *t)
{
	memset(s, 0, sizeof(*s));
	m[0] = (struct drv_mount){ "/srv/ro", "/run/moat", true };
	m[1] = (struct drv_mount){ "/srv/agent", "/run/moat-agent", false };
	t[0] = (struct drv_tmpfs){ "/tmp", 64u << 20, 01777 };
	s->workspace_id = "w1";
	s->image = "localhost/moat/base:latest";
	s->entrypoint = "/run/moat/moat-agent";
	s->args = test_args;
	s->env = test_env;
	s->hostname = "ws";
	s->mounts = m;
	s->nmounts = 2;
	s->tmpfs = t;
	s->ntmpfs = 1;
	s->memory_bytes = 256u << 20;
	s->nano_cpus = 500000000;
	s->pids_limit = 100;
	s->nofile = 1024;
	s->nproc = 512;
	s->uid_base = 2147614719u;
	s->uid_count = 65536;
	s->cap_add = test_caps;
	s->no_new_privileges = true;
	s->read_only_root = true;
}

static void
test_create_body(void **state)
{
	struct drv_spec s;
	struct drv_mount m[2];
	struct drv_tmpfs t[1];
	char *body = NULL, err[256];
	json_t *o, *hc, *u;

	(void)state;
	spec_init(&s, m, t);
	assert_int_equal(docker__create_body(&s, &body, err, sizeof(err)), 0);
	o = json_loads(body, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "Image")),
	    "localhost/moat/base:latest");
	assert_string_equal(json_string_value(json_array_get(
	    json_object_get(o, "Entrypoint"), 0)), "/run/moat/moat-agent");
	assert_int_equal(json_array_size(json_object_get(o, "Cmd")), 2);
	assert_int_equal(json_array_size(json_object_get(o, "Env")), 2);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    o, "Labels"), "moat.workspace")), "w1");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    o, "Labels"), "moat.managed")), "1");
	hc = json_object_get(o, "HostConfig");
	assert_string_equal(json_string_value(json_object_get(hc,
	    "NetworkMode")), "none");
	assert_string_equal(json_string_value(json_object_get(hc,
	    "UsernsMode")), "auto:size=65536,uidmapping=0:2147614719:65536,"
	    "gidmapping=0:2147614719:65536");
	assert_string_equal(json_string_value(json_array_get(json_object_get(
	    hc, "CapDrop"), 0)), "ALL");
	assert_int_equal(json_array_size(json_object_get(hc, "CapAdd")), 2);
	assert_string_equal(json_string_value(json_array_get(json_object_get(
	    hc, "SecurityOpt"), 0)), "no-new-privileges");
	assert_int_equal(json_integer_value(json_object_get(hc, "Memory")),
	    256 << 20);
	assert_int_equal(json_integer_value(json_object_get(hc, "NanoCpus")),
	    500000000);
	assert_int_equal(json_integer_value(json_object_get(hc, "PidsLimit")),
	    100);
	assert_true(json_is_true(json_object_get(hc, "ReadonlyRootfs")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(
	    hc, "Binds"), 0)), "/srv/ro:/run/moat:ro");
	assert_string_equal(json_string_value(json_array_get(json_object_get(
	    hc, "Binds"), 1)), "/srv/agent:/run/moat-agent:rw");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    hc, "Tmpfs"), "/tmp")), "size=67108864,mode=1777");
	u = json_object_get(hc, "Ulimits");
	assert_int_equal(json_array_size(u), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(u,
	    0), "Name")), "nofile");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(u,
	    1), "Hard")), 512);
	json_decref(o);
	free(body);

	/* Optional parts left out. */
	s.no_new_privileges = false;
	s.uid_count = 0;
	s.args = NULL;
	s.cap_add = NULL;
	s.memory_bytes = 0;
	assert_int_equal(docker__create_body(&s, &body, err, sizeof(err)), 0);
	o = json_loads(body, 0, NULL);
	hc = json_object_get(o, "HostConfig");
	assert_int_equal(json_array_size(json_object_get(hc, "SecurityOpt")), 0);
	assert_null(json_object_get(hc, "UsernsMode"));
	assert_null(json_object_get(hc, "Memory"));
	assert_int_equal(json_array_size(json_object_get(o, "Cmd")), 0);
	assert_int_equal(json_array_size(json_object_get(hc, "CapAdd")), 0);
	json_decref(o);
	free(body);

	/* What the bind syntax cannot carry is refused. */
	spec_init(&s, m, t);
	m[0].host_path = "/srv/a:b";
	body = (char *)1;
	assert_int_equal(docker__create_body(&s, &body, err, sizeof(err)),
	    MOAT_ERR_INVAL);
	assert_null(body);
	m[0].host_path = "relative";
	assert_int_equal(docker__create_body(&s, &body, err, sizeof(err)),
	    MOAT_ERR_INVAL);
	spec_init(&s, m, t);
	t[0].container_path = "/tmp,x";
	assert_int_equal(docker__create_body(&s, &body, err, sizeof(err)),
	    MOAT_ERR_INVAL);
	spec_init(&s, m, t);
	s.workspace_id = "../x";
	assert_int_equal(docker__create_body(&s, &body, err, sizeof(err)),
	    MOAT_ERR_INVAL);
	spec_init(&s, m, t);
	s.image = "x y";
	assert_int_equal(docker__create_body(&s, &body, err, sizeof(err)),
	    MOAT_ERR_INVAL);
	spec_init(&s, m, t);
	s.uid_base = 0xffff0000u;
	assert_int_equal(docker__create_body(&s, &body, err, sizeof(err)),
	    MOAT_ERR_INVAL);
	spec_init(&s, m, t);
	{
		static const char *const bad_env[] = { "NOEQUALS", NULL };

		s.env = bad_env;
		assert_int_equal(docker__create_body(&s, &body, err,
		    sizeof(err)), MOAT_ERR_INVAL);
	}
}

/* A Podman 4.3 inspect answer (trimmed). */
static const char inspect_running[] =
    "{\"Id\":\"60a1ad0653255801b89c089566ff624713d387d0407f8a25fe2ff0d8ccd2"
    "577f\",\"Created\":\"2026-12-03T18:50:03Z\",\"State\":{\"Status\":"
    "\"running\",\"Running\":true,\"Paused\":false,\"Restarting\":false,"
    "\"OOMKilled\":false,\"Dead\":false,\"Pid\":12426,\"ExitCode\":0,"
    "\"Error\":\"\",\"StartedAt\":\"2026-12-03T18:50:03.149597934Z\"},"
    "\"Name\":\"/moat-w1\",\"Config\":{\"Hostname\":\"ws\",\"Labels\":{"
    "\"moat.managed\":\"1\",\"moat.workspace\":\"w1\"}},\"SizeRw\":12,"
    "\"SizeRootFs\":181804081}";

static void
test_parse_inspect(void **state)
{
	struct drv_status st;
	char err[256], big[300];

	(void)state;
	assert_int_equal(docker__parse_inspect(inspect_running,
	    strlen(inspect_running), &st, err, sizeof(err)), 0);
	assert_int_equal(st.state, DRV_RUNNING);
	assert_string_equal(st.workspace_id, "w1");
	assert_int_equal(st.pid, 12426);
	assert_int_equal(st.root_rw_bytes, 12);
	assert_int_equal(strlen(st.id), 64);
	{
		static const char exited[] = "{\"Id\":\"x\",\"State\":{\"Status\":"
		    "\"exited\",\"ExitCode\":137,\"OOMKilled\":true,\"Pid\":99},"
		    "\"Config\":{\"Labels\":{\"moat.workspace\":\"a\\u0007b"
		    "\\u001b[31m\"}},\"SizeRw\":-1}";

		assert_int_equal(docker__parse_inspect(exited, strlen(exited),
		    &st, err, sizeof(err)), 0);
		assert_int_equal(st.state, DRV_EXITED);
		assert_int_equal(st.exit_code, 137);
		assert_true(st.oom_killed);
		assert_int_equal(st.pid, 0);	/* only while running */
		assert_int_equal(st.root_rw_bytes, 0);
		assert_string_equal(st.workspace_id, "ab[31m");
	}
	{
		static const char created[] = "{\"Id\":\"x\",\"State\":{"
		    "\"Status\":\"created\"}}";
		static const char paused[] = "{\"Id\":\"x\",\"State\":{"
		    "\"Status\":\"paused\"},\"Config\":null}";

		assert_int_equal(docker__parse_inspect(created,
		    strlen(created), &st, err, sizeof(err)), 0);
		assert_int_equal(st.state, DRV_CREATED);
		assert_string_equal(st.workspace_id, "");
		assert_int_equal(docker__parse_inspect(paused, strlen(paused),
		    &st, err, sizeof(err)), 0);
		assert_int_equal(st.state, DRV_OTHER);
	}
	err[0] = '\0';
	assert_int_equal(docker__parse_inspect("{\"Id\":\"x\"}", 10, &st, err,
	    sizeof(err)), MOAT_ERR_PARSE);
	assert_true(err[0] != '\0');
	assert_int_equal(docker__parse_inspect("[1]", 3, &st, err,
	    sizeof(err)), MOAT_ERR_PARSE);
	assert_int_equal(docker__parse_inspect("{", 1, &st, err, sizeof(err)),
	    MOAT_ERR_PARSE);
	assert_int_equal(docker__parse_inspect("", 0, &st, err, sizeof(err)),
	    MOAT_ERR_PARSE);
	assert_int_equal(docker__parse_inspect(big, DOCKER_BODY_MAX + 1, &st,
	    err, sizeof(err)), MOAT_ERR_TOOBIG);
	{
		/* A label longer than the field is cut, still terminated. */
		json_t *o;
		char *js;

		memset(big, 'w', sizeof(big));
		o = json_pack("{s:s, s:{s:s}, s:{s:{s:s%}}}", "Id", "x",
		    "State", "Status", "running", "Config", "Labels",
		    "moat.workspace", big, sizeof(big));
		js = json_dumps(o, JSON_COMPACT);

		assert_int_equal(docker__parse_inspect(js, strlen(js), &st,
		    err, sizeof(err)), 0);
		assert_int_equal(strlen(st.workspace_id),
		    sizeof(st.workspace_id) - 1);
		free(js);
		json_decref(o);
	}
}

static void
test_parse_list(void **state)
{
	static const char list[] =
	    "[{\"Id\":\"aaa\",\"Names\":[\"/moat-w1\"],\"State\":\"running\","
	    "\"Status\":\"Up 3 seconds\",\"Labels\":{\"moat.managed\":\"1\","
	    "\"moat.workspace\":\"w1\"}},{\"Id\":\"bbb\",\"State\":\"exited\","
	    "\"Labels\":{\"moat.managed\":\"1\"}},{\"Id\":\"ccc\",\"State\":{"
	    "\"Status\":\"created\"},\"Labels\":null}]";
	struct drv_status *v = NULL;
	size_t n = 9;
	char err[256];

	(void)state;
	assert_int_equal(docker__parse_list(list, strlen(list), &v, &n, err,
	    sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].id, "aaa");
	assert_int_equal(v[0].state, DRV_RUNNING);
	assert_string_equal(v[0].workspace_id, "w1");
	assert_int_equal(v[1].state, DRV_EXITED);
	assert_string_equal(v[1].workspace_id, "");
	assert_int_equal(v[2].state, DRV_CREATED);
	free(v);
	assert_int_equal(docker__parse_list("[]", 2, &v, &n, err,
	    sizeof(err)), 0);
	assert_int_equal(n, 0);
	assert_null(v);
	assert_int_equal(docker__parse_list("{}", 2, &v, &n, err,
	    sizeof(err)), MOAT_ERR_PARSE);
	assert_int_equal(docker__parse_list("[{\"Id\":1}]", 10, &v, &n, err,
	    sizeof(err)), MOAT_ERR_PARSE);
	assert_null(v);
	assert_int_equal(n, 0);
	assert_int_equal(docker__parse_list("[1]", 3, &v, &n, err,
	    sizeof(err)), MOAT_ERR_PARSE);
}

static void
test_parse_stats(void **state)
{
	static const char stats[] =
	    "{\"read\":\"2026-12-03T18:50:03Z\",\"pids_stats\":{\"current\":3},"
	    "\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":54176908,"
	    "\"percpu_usage\":[5124188,49052720]},\"online_cpus\":2},"
	    "\"memory_stats\":{\"usage\":2134016,\"limit\":268435456},"
	    "\"name\":\"moat-w1\"}";
	struct drv_stats s;
	char err[256];

	(void)state;
	assert_int_equal(docker__parse_stats(stats, strlen(stats), &s, err,
	    sizeof(err)), 0);
	assert_int_equal(s.cpu_total_ns, 54176908);
	assert_int_equal(s.memory_bytes, 2134016);
	assert_int_equal(s.memory_limit, 268435456);
	assert_int_equal(s.pids, 3);
	/* Podman's answer for a container that is not running. */
	assert_int_equal(docker__parse_stats("\n", 1, &s, err, sizeof(err)), 0);
	assert_int_equal(s.memory_limit, 0);
	{
		static const char odd[] = "{\"cpu_stats\":7,\"memory_stats\":"
		    "{\"usage\":-5}}";

		assert_int_equal(docker__parse_stats(odd, strlen(odd), &s, err,
		    sizeof(err)), 0);
	}
	assert_int_equal(s.memory_bytes, 0);
	assert_int_equal(docker__parse_stats("nope", 4, &s, err, sizeof(err)),
	    MOAT_ERR_PARSE);
}

static void
test_parse_progress(void **state)
{
	struct docker_progress p;
	char line[1024];
	int n;

	(void)state;
	n = snprintf(line, sizeof(line), "{\"status\":\"Downloading\","
	    "\"progressDetail\":{\"current\":1048576,\"total\":31457280},"
	    "\"progress\":\"[=>  ]\",\"id\":\"a1b2c3\"}");
	assert_int_equal(docker__parse_progress(line, (size_t)n, &p), 0);
	assert_int_equal(p.kind, DOCKER_PROGRESS_STATUS);
	assert_string_equal(p.text, "a1b2c3: Downloading");
	assert_int_equal(p.current, 1048576);
	assert_int_equal(p.total, 31457280);

	n = snprintf(line, sizeof(line), "{\"status\":\"Trying to pull "
	    "x\\u001b[2J\\r\\n\\u0085!\"}");
	assert_int_equal(docker__parse_progress(line, (size_t)n, &p), 0);
	assert_int_equal(p.kind, DOCKER_PROGRESS_STATUS);
	assert_string_equal(p.text, "Trying to pull x[2J!");
	assert_int_equal(p.total, 0);

	n = snprintf(line, sizeof(line), "{\"errorDetail\":{\"message\":"
	    "\"unauthorized: authentication required\"},\"error\":\"x\"}");
	assert_int_equal(docker__parse_progress(line, (size_t)n, &p), 0);
	assert_int_equal(p.kind, DOCKER_PROGRESS_ERROR);
	assert_string_equal(p.text, "unauthorized: authentication required");
	assert_int_equal(docker__pull_error_code(p.text), MOAT_ERR_PERM);
	n = snprintf(line, sizeof(line), "{\"error\":\"manifest unknown\"}");
	assert_int_equal(docker__parse_progress(line, (size_t)n, &p), 0);
	assert_int_equal(p.kind, DOCKER_PROGRESS_ERROR);
	assert_int_equal(docker__pull_error_code(p.text), MOAT_ERR_NOTFOUND);
	n = snprintf(line, sizeof(line), "{\"error\":42}");
	assert_int_equal(docker__parse_progress(line, (size_t)n, &p), 0);
	assert_int_equal(p.kind, DOCKER_PROGRESS_ERROR);
	assert_string_equal(p.text, "pull failed");
	assert_int_equal(docker__pull_error_code("connection reset"),
	    MOAT_ERR_IO);

	assert_int_equal(docker__parse_progress("  \r", 3, &p), 0);
	assert_int_equal(p.kind, DOCKER_PROGRESS_SKIP);
	assert_int_equal(docker__parse_progress("{\"id\":\"sha256:1\"}", 17,
	    &p), 0);
	assert_int_equal(p.kind, DOCKER_PROGRESS_SKIP);
	assert_int_equal(docker__parse_progress("Downloading", 11, &p),
	    MOAT_ERR_PARSE);
	assert_int_equal(docker__parse_progress(line, DOCKER_LINE_MAX + 1, &p),
	    MOAT_ERR_TOOBIG);

	/* A long status is cut to DOCKER_STATUS_MAX on a character
	 * boundary ("é" is two bytes). */
	{
		char longl[2048];
		size_t o = 0, i;

		o += (size_t)snprintf(longl, sizeof(longl), "{\"status\":\"x");
		for (i = 0; i < 300; i++) {
			memcpy(longl + o, "\xc3\xa9", 2);
			o += 2;
		}
		o += (size_t)snprintf(longl + o, sizeof(longl) - o, "\"}");
		assert_int_equal(docker__parse_progress(longl, o, &p), 0);
		assert_int_equal(strlen(p.text), 199);
		assert_int_equal((unsigned char)p.text[198], 0xa9);
	}
}

static void
test_clean_text(void **state)
{
	char out[16];

	(void)state;
	docker__clean_text("a\tb\x7f" "c\xc2\x9b" "d", 8, out, sizeof(out), 100);
	assert_string_equal(out, "abcd");
	docker__clean_text("\xe0\x0a\x41", 3, out, sizeof(out), 100);
	assert_string_equal(out, "A");
	docker__clean_text("\x80z", 2, out, sizeof(out), 100);
	assert_string_equal(out, "z");
	docker__clean_text("abcdefghijklmnopqrstuvwxyz", 26, out, sizeof(out),
	    100);
	assert_string_equal(out, "abcdefghijklmno");
	docker__clean_text("abc\xe2\x82\xac", 6, out, sizeof(out), 5);
	assert_string_equal(out, "abc");
	docker__clean_text("ab\xe2\x82", 4, out, sizeof(out), 100);
	assert_string_equal(out, "ab");
	docker__clean_text(NULL, 4, out, sizeof(out), 100);
	assert_string_equal(out, "");
}

static void
test_error_message(void **state)
{
	static const char e[] = "{\"cause\":\"no such container\",\"message\":"
	    "\"no container with name or ID \\\"moat-x\\\" found\\n\","
	    "\"response\":404}";
	char msg[256];

	(void)state;
	docker__error_message(e, strlen(e), msg, sizeof(msg));
	assert_string_equal(msg,
	    "no container with name or ID \"moat-x\" found");
	docker__error_message("<html>", 6, msg, sizeof(msg));
	assert_string_equal(msg, "");
	docker__error_message(NULL, 0, msg, sizeof(msg));
	assert_string_equal(msg, "");
}

/* ---------------------------------------------------------- real runtime */

struct live {
	struct driver *d;
	const char *image;
	char ids[3][64];
	char rodir[64], agentdir[64];
	uint32_t uid_base;
};

static void
live_cleanup_ids(struct live *L)
{
	char err[256];
	size_t i;

	for (i = 0; i < 3; i++)
		(void)L->d->ops->remove(L->d, L->ids[i], err, sizeof(err));
}

static int
live_setup(void **state)
{
	const char *sock = getenv("MOAT_TEST_DOCKER_SOCK");
	struct live *L;
	char err[256];
	size_t i;

	if (sock == NULL || sock[0] == '\0')
		return 0;	/* the tests skip */
	L = calloc(1, sizeof(*L));
	assert_non_null(L);
	if (docker_driver_new(&L->d, sock, err, sizeof(err)) != 0) {
		fprintf(stderr, "runtime at %s: %s\n", sock, err);
		free(L);
		return -1;
	}
	L->image = getenv("MOAT_TEST_DOCKER_IMAGE");
	if (L->image == NULL || L->image[0] == '\0')
		L->image = "localhost/moat/base:latest";
	for (i = 0; i < 3; i++)
		snprintf(L->ids[i], sizeof(L->ids[i]), "drvtest-%d-%zu",
		    (int)getpid(), i);
	/* A range of the `containers` subordinate ids (2147483647 +
	 * 2147483648) unlikely to be used by anyone else right now. */
	L->uid_base = 2147483647u + 65536u * (64u + (uint32_t)getpid() % 4096u);
	memcpy(L->rodir, "/tmp/moat-drvtest-ro-XXXXXX", 28);
	memcpy(L->agentdir, "/tmp/moat-drvtest-ag-XXXXXX", 28);
	assert_non_null(mkdtemp(L->rodir));
	assert_non_null(mkdtemp(L->agentdir));
	/* Open modes, so only the read-only mount stops writes to rodir. */
	assert_int_equal(chmod(L->rodir, 0777), 0);
	assert_int_equal(chmod(L->agentdir, 0777), 0);
	live_cleanup_ids(L);
	*state = L;
	return 0;
}

static int
live_teardown(void **state)
{
	struct live *L = *state;
	char cmd[256];

	if (L == NULL)
		return 0;
	live_cleanup_ids(L);
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", L->rodir, L->agentdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", L->rodir);
	L->d->ops->free(L->d);
	free(L);
	return 0;
}

#define LIVE_OR_SKIP(L) do {						\
	(L) = *state;							\
	if ((L) == NULL) {						\
		fprintf(stderr, "MOAT_TEST_DOCKER_SOCK not set: skipped\n"); \
		skip();							\
	}								\
} while (0)

/* What the container reports about itself, written by its command into
 * the agent directory; NULL after 20 s. Caller frees. */
static char *
live_report(struct live *L)
{
	char path[128], *data;
	int i;

	snprintf(path, sizeof(path), "%s/out", L->agentdir);
	for (i = 0; i < 400; i++) {
		FILE *f = fopen(path, "r");

		if (f != NULL) {
			data = calloc(1, 4096);
			assert_non_null(data);
			if (fread(data, 1, 4095, f) == 0)
				data[0] = '\0';
			fclose(f);
			return data;
		}
		usleep(50000);
	}
	return NULL;
}

/* The first line of /proc/PID/uid_map with runs of blanks squeezed:
 * "0 BASE COUNT". */
static void
live_uid_map(int64_t pid, char *out, size_t outlen)
{
	char path[64], line[256];
	size_t i, o = 0;
	bool sp = true;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%lld/uid_map", (long long)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	for (i = 0; line[i] != '\0' && line[i] != '\n' && o + 1 < outlen;
	    i++) {
		if (line[i] == ' ') {
			if (!sp)
				out[o++] = ' ';
			sp = true;
		} else {
			out[o++] = line[i];
			sp = false;
		}
	}
	if (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

static const char live_script[] =
    "d=/run/moat-agent; {"
    " echo \"env=$MOAT_T\";"
    " echo \"host=$(cat /proc/sys/kernel/hostname)\";"
    " if touch /etc/drvtest 2>/dev/null; then echo rootfs=rw; "
    "else echo rootfs=ro; fi;"
    " if touch /run/moat/x 2>/dev/null; then echo shared=rw; "
    "else echo shared=ro; fi;"
    " if touch /tmp/x; then echo tmp=rw; fi;"
    " echo \"ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' "
    "| tr '\\n' ,)\";"
    " grep CapEff /proc/self/status | tr -d '\\t';"
    " grep NoNewPrivs /proc/self/status | tr -d '\\t';"
    " } > $d/out.tmp; mv $d/out.tmp $d/out; exec sleep 300";

static void
live_spec(struct live *L, struct drv_spec *s, struct drv_mount *m,
    struct drv_tmpfs *t, const char *id)
{
	static const char *const args[] = { "-c", live_script, NULL };
	static const char *const env[] = { "MOAT_T=hello",
	    "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	static const char *const caps[] = { "CHOWN", "SETUID", "SETGID",
	    NULL };

	memset(s, 0, sizeof(*s));
	m[0] = (struct drv_mount){ L->rodir, "/run/moat", true };
	m[1] = (struct drv_mount){ L->agentdir, "/run/moat-agent", false };
	t[0] = (struct drv_tmpfs){ "/tmp", 16u << 20, 01777 };
	s->workspace_id = id;
	s->image = L->image;
	s->entrypoint = "/bin/sh";
	s->args = args;
	s->env = env;
	s->hostname = "drvtest";
	s->mounts = m;
	s->nmounts = 2;
	s->tmpfs = t;
	s->ntmpfs = 1;
	s->memory_bytes = 128u << 20;
	s->nano_cpus = 500000000;
	s->pids_limit = 64;
	s->nofile = 1024;
	s->nproc = 256;
	s->uid_base = L->uid_base;
	s->uid_count = 65536;
	s->cap_add = caps;
	s->no_new_privileges = true;
	s->read_only_root = true;
}

static void
test_live_lifecycle(void **state)
{
	struct live *L;
	struct driver *d;
	struct drv_spec s;
	struct drv_mount m[2];
	struct drv_tmpfs t[1];
	struct drv_status st, *list = NULL;
	struct drv_stats stats;
	char err[512], map[256], want[128], *rep;
	size_t n = 0, i;
	bool seen = false;

	LIVE_OR_SKIP(L);
	d = L->d;
	live_spec(L, &s, m, t, L->ids[0]);
	assert_int_equal(d->ops->inspect(d, L->ids[0], false, &st, err,
	    sizeof(err)), 0);
	assert_int_equal(st.state, DRV_ABSENT);
	if (d->ops->create(d, &s, err, sizeof(err)) != 0)
		fail_msg("create: %s", err);
	assert_int_equal(d->ops->inspect(d, L->ids[0], false, &st, err,
	    sizeof(err)), 0);
	assert_int_equal(st.state, DRV_CREATED);
	assert_string_equal(st.workspace_id, L->ids[0]);
	if (d->ops->start(d, L->ids[0], err, sizeof(err)) != 0)
		fail_msg("start: %s", err);
	/* Starting a running container is fine. */
	assert_int_equal(d->ops->start(d, L->ids[0], err, sizeof(err)), 0);
	assert_int_equal(d->ops->inspect(d, L->ids[0], true, &st, err,
	    sizeof(err)), 0);
	assert_int_equal(st.state, DRV_RUNNING);
	assert_true(st.pid > 1);
	assert_true(strlen(st.id) >= 12);

	/* Root inside is the recorded range on the host. */
	snprintf(want, sizeof(want), "0 %u 65536", L->uid_base);
	live_uid_map(st.pid, map, sizeof(map));
	assert_string_equal(map, want);

	/* What the container sees. */
	rep = live_report(L);
	if (rep == NULL)
		fail_msg("the container wrote no report");
	assert_non_null(strstr(rep, "env=hello\n"));
	assert_non_null(strstr(rep, "host=drvtest\n"));
	assert_non_null(strstr(rep, "rootfs=ro\n"));
	assert_non_null(strstr(rep, "shared=ro\n"));
	assert_non_null(strstr(rep, "tmp=rw\n"));
	assert_non_null(strstr(rep, "ifaces=lo,\n"));
	/* CHOWN (0), SETGID (6), SETUID (7) and nothing else. */
	assert_non_null(strstr(rep, "CapEff:00000000000000c1\n"));
	assert_non_null(strstr(rep, "NoNewPrivs:1\n"));
	free(rep);

	if (d->ops->stats(d, L->ids[0], &stats, err, sizeof(err)) != 0)
		fail_msg("stats: %s", err);
	assert_true(stats.cpu_total_ns > 0);
	assert_true(stats.memory_bytes > 0);
	assert_int_equal(stats.memory_limit, 128u << 20);
	assert_true(stats.pids >= 1);

	if (d->ops->list_owned(d, &list, &n, err, sizeof(err)) != 0)
		fail_msg("list: %s", err);
	for (i = 0; i < n; i++)
		if (strcmp(list[i].workspace_id, L->ids[0]) == 0) {
			seen = true;
			assert_int_equal(list[i].state, DRV_RUNNING);
		}
	assert_true(seen);
	free(list);

	if (d->ops->stop(d, L->ids[0], 1, err, sizeof(err)) != 0)
		fail_msg("stop: %s", err);
	assert_int_equal(d->ops->stop(d, L->ids[0], 1, err, sizeof(err)), 0);
	assert_int_equal(d->ops->inspect(d, L->ids[0], false, &st, err,
	    sizeof(err)), 0);
	assert_int_equal(st.state, DRV_EXITED);
	assert_int_equal(st.pid, 0);
	assert_int_equal(d->ops->stats(d, L->ids[0], &stats, err,
	    sizeof(err)), 0);
	list = NULL;
	seen = false;
	assert_int_equal(d->ops->list_owned(d, &list, &n, err, sizeof(err)), 0);
	for (i = 0; i < n; i++)
		if (strcmp(list[i].workspace_id, L->ids[0]) == 0) {
			seen = true;
			assert_int_equal(list[i].state, DRV_EXITED);
		}
	assert_true(seen);
	free(list);

	if (d->ops->remove(d, L->ids[0], err, sizeof(err)) != 0)
		fail_msg("remove: %s", err);
	/* Re-created from the same spec: the same host range, so files in a
	 * persistent home keep their owners. */
	if (d->ops->create(d, &s, err, sizeof(err)) != 0 ||
	    d->ops->start(d, L->ids[0], err, sizeof(err)) != 0)
		fail_msg("re-create: %s", err);
	assert_int_equal(d->ops->inspect(d, L->ids[0], false, &st, err,
	    sizeof(err)), 0);
	assert_int_equal(st.state, DRV_RUNNING);
	live_uid_map(st.pid, map, sizeof(map));
	assert_string_equal(map, want);
	if (d->ops->remove(d, L->ids[0], err, sizeof(err)) != 0)
		fail_msg("remove: %s", err);
	assert_int_equal(d->ops->inspect(d, L->ids[0], false, &st, err,
	    sizeof(err)), 0);
	assert_int_equal(st.state, DRV_ABSENT);
	assert_int_equal(d->ops->remove(d, L->ids[0], err, sizeof(err)), 0);
	assert_int_equal(d->ops->start(d, L->ids[0], err, sizeof(err)),
	    MOAT_ERR_NOTFOUND);
	assert_int_equal(d->ops->stats(d, L->ids[0], &stats, err,
	    sizeof(err)), MOAT_ERR_NOTFOUND);
	list = NULL;
	assert_int_equal(d->ops->list_owned(d, &list, &n, err, sizeof(err)), 0);
	for (i = 0; i < n; i++)
		assert_string_not_equal(list[i].workspace_id, L->ids[0]);
	free(list);
}

static void
test_live_exists(void **state)
{
	struct live *L;
	struct driver *d;
	struct drv_spec s;
	struct drv_mount m[2];
	struct drv_tmpfs t[1];
	char err[512];

	LIVE_OR_SKIP(L);
	d = L->d;
	live_spec(L, &s, m, t, L->ids[1]);
	if (d->ops->create(d, &s, err, sizeof(err)) != 0)
		fail_msg("create: %s", err);
	err[0] = '\0';
	assert_int_equal(d->ops->create(d, &s, err, sizeof(err)),
	    MOAT_ERR_EXISTS);
	assert_non_null(strstr(err, "already exists"));
	assert_int_equal(d->ops->remove(d, L->ids[1], err, sizeof(err)), 0);

	/* An image that is not there. */
	s.image = "localhost/moat/drvtest-absent:nope";
	assert_int_equal(d->ops->create(d, &s, err, sizeof(err)),
	    MOAT_ERR_NOTFOUND);
	/* A setting the runtime refuses (an unknown capability). */
	{
		static const char *const bad[] = { "NOT_A_CAP", NULL };

		live_spec(L, &s, m, t, L->ids[2]);
		s.cap_add = bad;
		err[0] = '\0';
		assert_int_equal(d->ops->create(d, &s, err, sizeof(err)),
		    MOAT_ERR_UNSUPPORTED);
		assert_true(err[0] != '\0');
		(void)d->ops->remove(d, L->ids[2], err, sizeof(err));
	}
}

struct progress_log {
	unsigned calls;
	bool sized;
};

static void
on_progress(void *arg, const char *status, uint64_t current, uint64_t total)
{
	struct progress_log *p = arg;
	size_t i, n = strlen(status);

	assert_true(n <= DOCKER_STATUS_MAX);
	for (i = 0; i < n; i++)
		assert_true((unsigned char)status[i] >= 0x20 &&
		    status[i] != 0x7f);
	if (total > 0 && current <= total)
		p->sized = true;
	p->calls++;
}

static void
test_live_pull(void **state)
{
	struct live *L;
	struct driver *d;
	const char *image = getenv("MOAT_TEST_PULL_IMAGE");
	const char *user = getenv("MOAT_TEST_PULL_USER");
	const char *pass = getenv("MOAT_TEST_PULL_PASS");
	struct drv_auth good, bad;
	struct progress_log pl = { 0 };
	char err[512];
	int r;

	LIVE_OR_SKIP(L);
	if (image == NULL || user == NULL || pass == NULL) {
		fprintf(stderr, "MOAT_TEST_PULL_IMAGE not set: skipped\n");
		skip();
	}
	d = L->d;
	good = (struct drv_auth){ user, pass };
	bad = (struct drv_auth){ user, "wrong-password" };
	r = d->ops->remove_image(d, image, err, sizeof(err));
	assert_true(r == 0 || r == MOAT_ERR_NOTFOUND);
	assert_int_equal(d->ops->remove_image(d, image, err, sizeof(err)),
	    MOAT_ERR_NOTFOUND);

	err[0] = '\0';
	r = d->ops->ensure_image(d, image, &bad, on_progress, &pl, err,
	    sizeof(err));
	fprintf(stderr, "wrong password: %d %s\n", r, err);
	assert_int_equal(r, MOAT_ERR_PERM);
	assert_null(strstr(err, "wrong-password"));
	r = d->ops->ensure_image(d, image, NULL, NULL, NULL, err, sizeof(err));
	fprintf(stderr, "no credentials: %d %s\n", r, err);
	assert_int_equal(r, MOAT_ERR_PERM);

	pl = (struct progress_log){ 0 };
	r = d->ops->ensure_image(d, image, &good, on_progress, &pl, err,
	    sizeof(err));
	if (r != 0)
		fail_msg("pull: %d %s", r, err);
	fprintf(stderr, "pull: %u progress calls, sized %d\n", pl.calls,
	    pl.sized);
	assert_true(pl.calls > 0);
	/* Present now: no pull, no progress. */
	pl = (struct progress_log){ 0 };
	assert_int_equal(d->ops->ensure_image(d, image, &bad, on_progress, &pl,
	    err, sizeof(err)), 0);
	assert_int_equal(pl.calls, 0);
	assert_int_equal(d->ops->ensure_image(d, "bad image", NULL, NULL, NULL,
	    err, sizeof(err)), MOAT_ERR_INVAL);
}

int
main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_object_name),
		cmocka_unit_test(test_socket_path),
		cmocka_unit_test(test_driver_new_refusals),
		cmocka_unit_test(test_image_split),
		cmocka_unit_test(test_auth_header),
		cmocka_unit_test(test_create_body),
		cmocka_unit_test(test_parse_inspect),
		cmocka_unit_test(test_parse_list),
		cmocka_unit_test(test_parse_stats),
		cmocka_unit_test(test_parse_progress),
		cmocka_unit_test(test_clean_text),
		cmocka_unit_test(test_error_message),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(test_live_lifecycle),
		cmocka_unit_test(test_live_exists),
		cmocka_unit_test(test_live_pull),
	};
	int r;

	r = cmocka_run_group_tests_name("docker", pure, NULL, NULL);
	r += cmocka_run_group_tests_name("docker-live", live, live_setup,
	    live_teardown);
	return r;
}
