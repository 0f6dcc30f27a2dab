// SPDX-License-Identifier: MIT
/*
 * Unit tests for src/vmm/instance.c through the API's routes (api_handle) and its lifecycle functions:
 * configuration before InstanceStart and every rule it enforces, calls in the wrong state with Firecracker's
 * messages, GET /vcpus, instance_stop, instance_restore's refusal, and the InstanceStart hand-over to the
 * main thread (played here by the test: no KVM, no VM is built; a
 * zeroed struct vm stands for the running one).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/routes.h"
#include "vmm/config.h"
#include "vmm/instance.h"
#include "vmm/snapshot.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

/* Paths that exist in any test environment: the test binary itself stands for a kernel. */
static char kernel_path[4096];

struct fixture {
	struct vm_config cfg;
	struct instance inst;
	struct vm vm; /* what the "main thread" hands over: only its lock and pause flag are used */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	vm_config_init(&f->cfg);
	if (instance_init(&f->inst, &f->cfg))
		return -1;
	pthread_mutex_init(&f->vm.lock, NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	instance_destroy(&f->inst);
	vm_config_free(&f->cfg);
	pthread_mutex_destroy(&f->vm.lock);
	free(f);
	return 0;
}

/* One request; returns the status, and the fault message (or body) in `msg`. */
static unsigned int call(struct fixture *f, const char *method, const char *path, const char *body, char *msg,
			 size_t size)
{
	struct api_response resp;
	unsigned int status;
	json_t *obj;

	api_handle(instance_handle, &f->inst, method, path, body, body ? strlen(body) : 0, &resp);
	status = resp.status;
	msg[0] = '\0';
	if (resp.body) {
		obj = json_loads(resp.body, 0, NULL);
		if (json_string_value(json_object_get(obj, "fault_message")))
			snprintf(msg, size, "%s", json_string_value(json_object_get(obj, "fault_message")));
		else
			snprintf(msg, size, "%s", resp.body);
		json_decref(obj);
	}
	api_response_free(&resp);
	return status;
}

static void ok(struct fixture *f, const char *method, const char *path, const char *body)
{
	char msg[1024];
	unsigned int status = call(f, method, path, body, msg, sizeof(msg));

	if (status != 204)
		fail_msg("%s %s %s: %u %s (want 204)", method, path, body ? body : "", status, msg);
}

/* A 400 whose fault message starts with `want`. */
static void refused(struct fixture *f, const char *method, const char *path, const char *body, const char *want)
{
	char msg[1024];
	unsigned int status = call(f, method, path, body, msg, sizeof(msg));

	if (status != 400 || strncmp(msg, want, strlen(want)))
		fail_msg("%s %s %s:\n  got  %u \"%s\"\n  want 400 \"%s...\"", method, path, body ? body : "", status, msg,
			 want);
}

/* GET /vm/config as a JSON object (the caller decrefs). */
static json_t *vm_config(struct fixture *f)
{
	char msg[4096];
	json_t *obj;

	assert_int_equal(call(f, "GET", "/vm/config", NULL, msg, sizeof(msg)), 200);
	obj = json_loads(msg, 0, NULL);
	assert_non_null(obj);
	return obj;
}

static const char *state_of(struct fixture *f)
{
	static char state[32];
	char msg[1024];
	json_t *obj;

	assert_int_equal(call(f, "GET", "/", NULL, msg, sizeof(msg)), 200);
	obj = json_loads(msg, 0, NULL);
	snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(obj, "state")));
	json_decref(obj);
	return state;
}

static void put_kernel(struct fixture *f, const char *boot_args)
{
	char body[4200];

	snprintf(body, sizeof(body), "{\"kernel_image_path\": \"%s\", \"boot_args\": \"%s\"}", kernel_path, boot_args);
	ok(f, "PUT", "/boot-source", body);
}

static void test_configure(void **state)
{
	struct fixture *f = *state;
	json_t *cfg;

	assert_string_equal(state_of(f), "Not started");
	put_kernel(f, "console=ttyS0 reboot=k panic=1 pci=off");
	ok(f, "PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64, \"smt\": false}");
	ok(f, "PATCH", "/machine-config", "{\"mem_size_mib\": 48}");
	ok(f, "PUT", "/entropy", "{}");
	assert_string_equal(f->cfg.kernel_path, kernel_path);
	assert_string_equal(f->cfg.cmdline, "console=ttyS0 reboot=k panic=1 pci=off");
	assert_int_equal(f->cfg.vcpus, 2);
	assert_int_equal(f->cfg.mem_mib, 48);
	assert_true(f->cfg.entropy);

	cfg = vm_config(f);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(cfg, "machine-config"), "vcpu_count")), 2);
	assert_string_equal(json_string_value(json_object_get(json_object_get(cfg, "boot-source"), "kernel_image_path")),
			    kernel_path);
	assert_true(json_is_object(json_object_get(cfg, "entropy")));
	json_decref(cfg);

	/* A PUT of machine-config replaces it whole: smt back to its default. */
	ok(f, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 32}");
	assert_int_equal(f->cfg.vcpus, 1);
	/* Firecracker's rules over the fields together: with smt, 1 or an even number of vCPUs. */
	refused(f, "PATCH", "/machine-config", "{\"vcpu_count\": 3, \"smt\": true}", "machine-config");
	assert_int_equal(f->cfg.vcpus, 1); /* unchanged */
	/* A boot source is checked when it is PUT, and a refused one changes nothing. */
	refused(f, "PUT", "/boot-source", "{\"kernel_image_path\": \"/nonexistent/vmlinux\"}",
		"boot-source.kernel_image_path: /nonexistent/vmlinux: No such file or directory");
	refused(f, "PUT", "/boot-source", "{\"kernel_image_path\": \"/\"}", "boot-source.kernel_image_path: /: not a regular file");
	assert_string_equal(f->cfg.kernel_path, kernel_path);
	/* A PUT replaces the whole boot source: boot_args absent is boot_args unset. */
	ok(f, "PUT", "/boot-source", "{\"kernel_image_path\": \"/proc/self/exe\"}");
	assert_null(f->cfg.cmdline);
}

static void test_runtime_calls_before_start(void **state)
{
	struct fixture *f = *state;
	const char *msg = INSTANCE_ERR_BEFORE_START;

	refused(f, "PATCH", "/vm", "{\"state\": \"Paused\"}", msg);
	refused(f, "PATCH", "/vm", "{\"state\": \"Resumed\"}", msg);
	refused(f, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}", msg);
	refused(f, "PUT", "/snapshot/create", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}", msg);
	refused(f, "PUT", "/vm/clone", "{\"clone_id\": \"c\", \"api_socket\": \"s\"}", msg);
	/* Not there yet at all, in any state. */
	refused(f, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}", "FlushMetrics: not supported yet");
	/* A load is only for an instance nothing was configured in (Firecracker's rule); an unconfigured one
	 * hands it to the main thread like InstanceStart (tests/integration/test_snapshot.py). */
	put_kernel(f, "x");
	refused(f, "PUT", "/snapshot/load", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}",
		INSTANCE_ERR_LOAD_CONFIGURED);
	assert_string_equal(state_of(f), "Not started");
}

static void test_start_needs_a_valid_config(void **state)
{
	struct fixture *f = *state;

	refused(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}",
		"Cannot start microvm without kernel configuration.");
	put_kernel(f, "x");
	/* vm_config_validate's host checks: more memory than the host has. */
	ok(f, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 1048576}");
	refused(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", "machine-config.mem_size_mib:");
	/* The kernel was there when PUT and is gone at InstanceStart: checked again. */
	ok(f, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 32}");
	free(f->cfg.kernel_path);
	f->cfg.kernel_path = strdup("/nonexistent/vmlinux");
	refused(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", "boot-source.kernel_image_path:");
	assert_string_equal(state_of(f), "Not started");
}

/* An API request on a thread of its own: InstanceStart waits for the main thread's answer. */
struct pending_call {
	struct fixture *f;
	const char *method, *path, *body;
	unsigned int status;
	char msg[1024];
	pthread_t thread;
};

static void *pending_call_run(void *arg)
{
	struct pending_call *c = arg;

	c->status = call(c->f, c->method, c->path, c->body, c->msg, sizeof(c->msg));
	return NULL;
}

static void instance_start_async(struct fixture *f, struct pending_call *c)
{
	memset(c, 0, sizeof(*c));
	c->f = f;
	c->method = "PUT";
	c->path = "/actions";
	c->body = "{\"action_type\": \"InstanceStart\"}";
	assert_int_equal(pthread_create(&c->thread, NULL, pending_call_run, c), 0);
}

/* A readable file per drive: kiln refuses two drives on one file. */
static void drive_file(char *path, size_t size, int n)
{
	FILE *f;

	snprintf(path, size, "/tmp/kiln-test-instance-%d-drive%d", (int)getpid(), n);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
}

static void put_drive(struct fixture *f, const char *id, const char *path, bool root, bool ok_wanted, const char *want)
{
	char body[512], url[128];

	snprintf(url, sizeof(url), "/drives/%s", id);
	snprintf(body, sizeof(body),
		 "{\"drive_id\": \"%s\", \"path_on_host\": \"%s\", \"is_root_device\": %s, \"is_read_only\": true}", id,
		 path, root ? "true" : "false");
	if (ok_wanted)
		ok(f, "PUT", url, body);
	else
		refused(f, "PUT", url, body, want);
}

static void test_drives(void **state)
{
	struct fixture *f = *state;
	char paths[CONFIG_MAX_DRIVES + 1][128], id[16];
	struct pending_call c;
	json_t *cfg, *drives;
	int signo;

	for (int i = 0; i <= CONFIG_MAX_DRIVES; i++)
		drive_file(paths[i], sizeof(paths[i]), i);
	put_drive(f, "scratch", paths[0], false, true, NULL);
	put_drive(f, "rootfs", paths[1], true, true, NULL);
	/* Firecracker's rules, through the config file's list (vm_config_put_drive): one root device ... */
	put_drive(f, "root2", paths[2], true, false, "drives: a root block device already exists (drive \"rootfs\")");
	/* ... one drive per file ... */
	put_drive(f, "again", paths[0], false, false, "drives.path_on_host:");
	/* ... and the same id again replaces the drive (and may keep it root). */
	ok(f, "PUT", "/drives/rootfs", "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/proc/self/exe\","
	   " \"is_root_device\": true, \"is_read_only\": true, \"cache_type\": \"Writeback\"}");
	/* The file must open as the drive will use it, when PUT (Firecracker opens it then). */
	put_drive(f, "d", "/nonexistent.ext4", false, false, "drives.path_on_host: /nonexistent.ext4: No such file or directory");
	cfg = vm_config(f);
	drives = json_object_get(cfg, "drives");
	assert_int_equal(json_array_size(drives), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(drives, 0), "drive_id")), "scratch");
	assert_string_equal(json_string_value(json_object_get(json_array_get(drives, 1), "drive_id")), "rootfs");
	assert_string_equal(json_string_value(json_object_get(json_array_get(drives, 1), "cache_type")), "Writeback");
	json_decref(cfg);
	/* Bounded: a client cannot make kiln keep drives without limit. */
	for (int i = 2; i < CONFIG_MAX_DRIVES; i++) {
		snprintf(id, sizeof(id), "d%d", i);
		put_drive(f, id, paths[i], false, true, NULL);
	}
	put_drive(f, "one_more", paths[CONFIG_MAX_DRIVES], false, false, "drives: at most 16 drives");
	assert_int_equal(f->cfg.nr_drives, CONFIG_MAX_DRIVES);

	/* InstanceStart hands them to the main thread in the configuration, as a config file's. */
	put_kernel(f, "x");
	ok(f, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 32}");
	instance_start_async(f, &c);
	assert_int_equal(instance_wait_start(&f->inst, &signo), 0);
	assert_int_equal(f->cfg.nr_drives, CONFIG_MAX_DRIVES);
	assert_true(f->cfg.drives[1].is_root_device);
	instance_start_done(&f->inst, NULL, -EIO, "test");
	pthread_join(c.thread, NULL);
	assert_int_equal(c.status, 400);
	for (int i = 0; i <= CONFIG_MAX_DRIVES; i++)
		unlink(paths[i]);
}

static void test_network_interfaces(void **state)
{
	struct fixture *f = *state;
	char url[64], body[256];
	json_t *cfg, *nets;

	ok(f, "PUT", "/network-interfaces/eth0",
	   "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:AC:10:00:02\"}");
	ok(f, "PUT", "/network-interfaces/eth1", "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\", \"mtu\": 1400}");
	refused(f, "PUT", "/network-interfaces/eth2", "{\"iface_id\": \"eth2\", \"host_dev_name\": \"tap0\"}",
		"network-interfaces.host_dev_name: tap0 is already used by interface \"eth0\"");
	refused(f, "PUT", "/network-interfaces/eth2",
		"{\"iface_id\": \"eth2\", \"host_dev_name\": \"tap2\", \"guest_mac\": \"06:00:ac:10:00:02\"}",
		"network-interfaces.guest_mac: already used by interface \"eth0\"");
	/* Replacing eth0 may keep its own TAP and MAC. */
	ok(f, "PUT", "/network-interfaces/eth0",
	   "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:ac:10:00:02\", \"mtu\": 9000}");
	cfg = vm_config(f);
	nets = json_object_get(cfg, "network-interfaces");
	assert_int_equal(json_array_size(nets), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(nets, 0), "guest_mac")), "06:00:ac:10:00:02");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(nets, 0), "mtu")), 9000);
	assert_string_equal(json_string_value(json_object_get(json_array_get(nets, 1), "host_dev_name")), "tap1");
	json_decref(cfg);
	for (int i = 2; i < CONFIG_MAX_NETS; i++) {
		snprintf(url, sizeof(url), "/network-interfaces/eth%d", i);
		snprintf(body, sizeof(body), "{\"iface_id\": \"eth%d\", \"host_dev_name\": \"tap%d\"}", i, i);
		ok(f, "PUT", url, body);
	}
	refused(f, "PUT", "/network-interfaces/ethx", "{\"iface_id\": \"ethx\", \"host_dev_name\": \"tapx\"}",
		"network-interfaces: at most 8 network interfaces");
	assert_int_equal(f->cfg.nr_nets, CONFIG_MAX_NETS);
}

static void test_start_handover(void **state)
{
	struct fixture *f = *state;
	struct pending_call c;
	int signo = -1;

	put_kernel(f, "count");
	ok(f, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 32}");

	/* The main thread cannot build the VM: InstanceStart's 400 carries why, configuration goes on. */
	instance_start_async(f, &c);
	assert_int_equal(instance_wait_start(&f->inst, &signo), 0);
	assert_int_equal(f->inst.state, INSTANCE_STARTING);
	instance_start_done(&f->inst, NULL, -ENOEXEC, "kernel: not an ELF or bzImage");
	pthread_join(c.thread, NULL);
	assert_int_equal(c.status, 400);
	assert_string_equal(c.msg, "Cannot start microvm: kernel: not an ELF or bzImage");
	assert_string_equal(state_of(f), "Not started");
	ok(f, "PATCH", "/machine-config", "{\"mem_size_mib\": 64}");

	/* It can: 204 once the VM exists, and from then on the VM answers. */
	instance_start_async(f, &c);
	assert_int_equal(instance_wait_start(&f->inst, &signo), 0);
	assert_int_equal(f->cfg.mem_mib, 64); /* what the main thread builds from */
	instance_start_done(&f->inst, &f->vm, 0, NULL);
	pthread_join(c.thread, NULL);
	assert_int_equal(c.status, 204);
	assert_string_equal(state_of(f), "Running");
	f->vm.paused = true;
	assert_string_equal(state_of(f), "Paused");
	f->vm.paused = false;

	/* Pre-boot-only calls, InstanceStart included: Firecracker's 400. */
	refused(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", INSTANCE_ERR_AFTER_START);
	refused(f, "PUT", "/boot-source", "{\"kernel_image_path\": \"/proc/self/exe\"}", INSTANCE_ERR_AFTER_START);
	refused(f, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 32}", INSTANCE_ERR_AFTER_START);
	refused(f, "PATCH", "/machine-config", "{\"vcpu_count\": 2}", INSTANCE_ERR_AFTER_START);
	refused(f, "PUT", "/entropy", "{}", INSTANCE_ERR_AFTER_START);
	refused(f, "PUT", "/drives/rootfs",
		"{\"drive_id\": \"rootfs\", \"path_on_host\": \"/proc/self/exe\", \"is_root_device\": true, \"is_read_only\": true}",
		INSTANCE_ERR_AFTER_START);
	refused(f, "PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}",
		INSTANCE_ERR_AFTER_START);
	/* Runtime ops reach the running VM's own rules: a snapshot needs a paused VM. */
	refused(f, "PUT", "/snapshot/create", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}",
		"the VM must be paused for a snapshot");
	/* Malformed requests are still refused before any state is looked at. */
	refused(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"", "malformed JSON body");
	refused(f, "PUT", "/actions", "{\"action_type\": \"Reboot\"}", "action_type:");
	assert_int_equal(f->cfg.mem_mib, 64);
}

static void test_signal_while_waiting(void **state)
{
	struct fixture *f = *state;
	sigset_t term, old;
	int signo = 0;

	/* Pending on this thread, blocked: instance_wait_start takes it through its signalfd. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	pthread_kill(pthread_self(), SIGTERM);
	assert_int_equal(instance_wait_start(&f->inst, &signo), -EINTR);
	assert_int_equal(signo, SIGTERM);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Stopped: everything is refused, nothing waits. */
	refused(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", "kiln is stopping");
	refused(f, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 32}", "kiln is stopping");
	refused(f, "PATCH", "/vm", "{\"state\": \"Paused\"}", "kiln is stopping");
	assert_string_equal(state_of(f), "Not started");
}

/* A signal and InstanceStart at once: the signal wins and InstanceStart is answered, not left hanging. */
static void test_signal_during_start(void **state)
{
	struct fixture *f = *state;
	struct pending_call c;
	sigset_t term, old;
	int signo = 0;

	put_kernel(f, "count");
	ok(f, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 32}");
	instance_start_async(f, &c);
	while (__atomic_load_n(&f->inst.state, __ATOMIC_SEQ_CST) != INSTANCE_STARTING)
		usleep(1000);
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	pthread_kill(pthread_self(), SIGTERM);
	assert_int_equal(instance_wait_start(&f->inst, &signo), -EINTR);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_join(c.thread, NULL);
	assert_int_equal(c.status, 400);
	assert_string_equal(c.msg, "Cannot start microvm: kiln is stopping");
}

/* A VM booted without waiting (config file or --kernel) is running from the start. */
static void test_running_from_the_start(void **state)
{
	struct fixture *f = *state;

	instance_set_running(&f->inst, &f->vm);
	assert_string_equal(state_of(f), "Running");
	refused(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", INSTANCE_ERR_AFTER_START);
	refused(f, "PUT", "/boot-source", "{\"kernel_image_path\": \"/proc/self/exe\"}", INSTANCE_ERR_AFTER_START);
}

/* GET /vcpus: refused before InstanceStart (Firecracker's runtime rule), then each vCPU's index and tid. */
static void test_vcpus(void **state)
{
	struct fixture *f = *state;
	struct vcpu v0, v1, *vcpus[2] = { &v0, &v1 };
	char msg[1024];

	refused(f, "GET", "/vcpus", NULL, INSTANCE_ERR_BEFORE_START);
	memset(&v0, 0, sizeof(v0));
	memset(&v1, 0, sizeof(v1));
	atomic_store(&v1.tid, 4321); /* vCPU 0's thread has not started yet */
	f->vm.nr_vcpus = 2;
	f->vm.vcpus = vcpus;
	instance_set_running(&f->inst, &f->vm);
	assert_int_equal(call(f, "GET", "/vcpus", NULL, msg, sizeof(msg)), 200);
	assert_string_equal(msg, "[{\"index\":0,\"tid\":null},{\"index\":1,\"tid\":4321}]");
	f->vm.vcpus = NULL;
}

/* instance_stop before the start: every later request is refused, GET / still answers. */
static void test_stop(void **state)
{
	struct fixture *f = *state;

	put_kernel(f, "x");
	instance_stop(&f->inst, "test");
	refused(f, "PUT", "/boot-source", "{\"kernel_image_path\": \"/proc/self/exe\"}", "kiln is stopping");
	refused(f, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", "kiln is stopping");
	assert_string_equal(state_of(f), "Not started");
}

/* instance_restore of a file that is not there: the reason names it, and nothing changed. */
static void test_restore_missing_file(void **state)
{
	struct fixture *f = *state;
	struct vm_restore_options opts = { .mem_path = "/nonexistent.mem" };
	char err[512] = "";

	put_kernel(f, "x");
	assert_int_equal(instance_restore(&f->inst, &f->vm, "/nonexistent.snap", &opts, NULL, 0, err, sizeof(err)),
			 -ENOENT);
	if (!strstr(err, "/nonexistent.snap"))
		fail_msg("the message does not name the file: \"%s\"", err);
	assert_string_equal(f->cfg.kernel_path, kernel_path);
	assert_string_equal(state_of(f), "Not started");
}

struct kicker {
	struct pending_call *c;
	pthread_t main;
	pthread_t thread;
};

/* Once InstanceStart has its answer, stop the main thread's instance_boot_from_api. */
static void *kick_after_answer(void *arg)
{
	struct kicker *k = arg;

	pthread_join(k->c->thread, NULL);
	pthread_kill(k->main, SIGTERM);
	return NULL;
}

/*
 * instance_boot_from_api builds the VM itself: a kernel it cannot load (this test binary, an ELF that is no
 * executable; or, without KVM, /dev/kvm) answers InstanceStart with the builder's reason, not an errno, and the
 * instance takes configuration again.
 */
static void test_boot_from_api_failure(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = calloc(1, sizeof(*vm));
	struct pending_call c;
	struct kicker k;
	sigset_t term, old;
	int signo = 0;

	assert_non_null(vm);
	put_kernel(f, "x");
	ok(f, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 32}");
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	instance_start_async(f, &c);
	k = (struct kicker){ .c = &c, .main = pthread_self() };
	assert_int_equal(pthread_create(&k.thread, NULL, kick_after_answer, &k), 0);
	assert_int_equal(instance_boot_from_api(&f->inst, vm, 0, &signo), -EINTR);
	pthread_join(k.thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	assert_int_equal(signo, SIGTERM);
	assert_int_equal(c.status, 400);
	if (strncmp(c.msg, "Cannot start microvm: cannot create the VM: ", 44) ||
	    (!strstr(c.msg, "not an executable") && !strstr(c.msg, "/dev/kvm")) || strstr(c.msg, "log says more"))
		fail_msg("InstanceStart's message lacks the reason: \"%s\"", c.msg);
	free(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_configure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runtime_calls_before_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_needs_a_valid_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drives, setup, teardown),
		cmocka_unit_test_setup_teardown(test_network_interfaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_handover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signal_while_waiting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signal_during_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_running_from_the_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vcpus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_boot_from_api_failure, setup, teardown),
	};
	ssize_t n = readlink("/proc/self/exe", kernel_path, sizeof(kernel_path) - 1);

	if (n <= 0)
		return 1;
	kernel_path[n] = '\0';
	return cmocka_run_group_tests(tests, NULL, NULL);
}
